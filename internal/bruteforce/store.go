package bruteforce

import (
	"context"
	"fmt"
	"time"
)

// Store keeps the failure state of usernames and client addresses. It is
// the minimal set of atomic operations a Guard needs; Local and Redis
// implement it, and NewFailover combines two of them. Implementations must
// be safe for concurrent use.
//
// A username and a client address are two independent subjects. Each
// subject's update must be atomic on its own (so that concurrent failures
// are all counted and a threshold crossing is reported exactly once); the
// two subjects of one call need not be updated atomically together. An
// empty user or client means "no such subject": it is neither read nor
// written and its Subject in the State is zero.
type Store interface {
	// RecordFailure counts one failed login of user from client under p
	// and returns both subjects' state after the update. Per subject:
	//
	//   - unless the subject is locked, its failure count is incremented
	//     (a count still at or above the limit after a served lock starts a
	//     new round at 1, with a new window); reaching the limit engages the
	//     lock for p.Lockout and sets LockedNow. A locked subject's count is
	//     left alone and its lock is not extended;
	//   - the counterpart (client for a username, username for a client),
	//     when not empty, joins the subject's distinct set, which holds at
	//     most SetCapFactor × threshold members; the first time in a set's
	//     window that the set size exceeds the threshold, the subject is
	//     flagged until the set's window ends and FlaggedNow is set.
	RecordFailure(ctx context.Context, user, client string, p Policy) (State, error)
	// State reads both subjects' state without changing it. LockedNow and
	// FlaggedNow are always false.
	State(ctx context.Context, user, client string) (State, error)
	// Reset clears the failure count of user. It leaves the lock, the
	// distinct set and the flag of user untouched, and does nothing to any
	// client address.
	Reset(ctx context.Context, user string) error
}

// Policy is what a Store needs to know to record a failure: the windows and
// thresholds of Options after defaults. Guard.Policy reports the Policy a
// Guard uses.
type Policy struct {
	// Window is the length of a fixed counting window, starting at the
	// first failure of a subject (for counts) or the first member of a
	// distinct set (for sets).
	Window time.Duration
	// Lockout is how long a subject stays locked once it reaches its limit.
	Lockout time.Duration
	// MaxFailures is the username's limit: the failure that makes the count
	// reach it engages the username lock.
	MaxFailures int
	// MaxClientFailures is the client address's limit, likewise.
	MaxClientFailures int
	// MaxUsernamesPerClient is the credential-stuffing threshold: a client
	// address with more distinct failing usernames in its window is flagged.
	MaxUsernamesPerClient int
	// MaxClientsPerUsername is the distributed-attack threshold: a username
	// failing from more distinct client addresses in its window is flagged.
	MaxClientsPerUsername int
}

// check reports a Policy no store can enforce, wrapping ErrInvalidOptions.
// Stores call it so that a direct caller cannot create keys without expiry.
func (p Policy) check() error {
	switch {
	case p.Window < minDuration || p.Window > MaxSpan:
		return fmt.Errorf("%w: policy window %s outside [%s, %s]", ErrInvalidOptions, p.Window, minDuration, MaxSpan)
	case p.Lockout < minDuration || p.Lockout > MaxSpan:
		return fmt.Errorf("%w: policy lockout %s outside [%s, %s]", ErrInvalidOptions, p.Lockout, minDuration, MaxSpan)
	case p.MaxFailures < 1 || p.MaxClientFailures < 1:
		return fmt.Errorf("%w: policy failure limits %d, %d must be positive", ErrInvalidOptions, p.MaxFailures, p.MaxClientFailures)
	case p.MaxUsernamesPerClient < 1 || p.MaxUsernamesPerClient > MaxDistinctThreshold ||
		p.MaxClientsPerUsername < 1 || p.MaxClientsPerUsername > MaxDistinctThreshold:
		return fmt.Errorf("%w: policy distinct thresholds %d, %d outside [1, %d]",
			ErrInvalidOptions, p.MaxUsernamesPerClient, p.MaxClientsPerUsername, MaxDistinctThreshold)
	}
	return nil
}

// setCap is the most members a distinct set with the given threshold holds.
func setCap(threshold int) int { return SetCapFactor * threshold }

// State is a Store's view of one (username, client address) pair.
type State struct {
	// User is the username's state; zero when the username is empty.
	User Subject
	// Client is the client address's state; zero when the address is empty.
	Client Subject
}

// Subject is the state of one username or one client address.
type Subject struct {
	// Failures is the failure count in the current window, as stored: after
	// a lock has been served it may still be at or above the limit until
	// the next failure starts a new round (the Guard then treats it as 0).
	Failures int
	// Locked is the time left on the subject's lock; 0 when not locked.
	Locked time.Duration
	// Distinct is the size of the subject's distinct set in its current
	// window (at most SetCapFactor × threshold).
	Distinct int
	// Flagged is the time left on the stuffing (client) or distributed
	// (username) flag, i.e. until the distinct set's window ends; 0 if none.
	Flagged time.Duration
	// LockedNow reports that this RecordFailure engaged the lock.
	LockedNow bool
	// FlaggedNow reports that this RecordFailure raised the flag: the
	// distinct threshold was crossed for the first time in this window.
	FlaggedNow bool
}
