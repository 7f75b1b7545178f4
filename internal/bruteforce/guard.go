package bruteforce

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrInvalidOptions reports Options (or a Policy handed to a Store)
	// that cannot be enforced.
	ErrInvalidOptions = errors.New("invalid brute-force options")
	// ErrStore reports a failure of a shared store (Redis): a transport
	// error, a timeout or an unexpected reply. A Failover store falls back
	// to its local store on it.
	ErrStore = errors.New("brute-force store failed")
)

// Defaults and bounds; the package documentation gives the reason for each.
const (
	// DefaultClientFailuresFactor derives MaxClientFailures from MaxFailures
	// when it is zero.
	DefaultClientFailuresFactor = 4
	// DefaultMaxDelay caps the progressive delay when MaxDelay is zero.
	DefaultMaxDelay = 2 * time.Second
	// DefaultMaxUsernamesPerClient is the credential-stuffing threshold when
	// MaxUsernamesPerClient is zero.
	DefaultMaxUsernamesPerClient = 10
	// DefaultMaxClientsPerUsername is the distributed-attack threshold when
	// MaxClientsPerUsername is zero.
	DefaultMaxClientsPerUsername = 10
	// SetCapFactor bounds every distinct set at SetCapFactor × its
	// threshold members.
	SetCapFactor = 2
	// MaxFailuresLimit is the largest accepted MaxFailures and
	// MaxClientFailures.
	MaxFailuresLimit = 1_000_000
	// MaxDistinctThreshold is the largest accepted MaxUsernamesPerClient and
	// MaxClientsPerUsername.
	MaxDistinctThreshold = 10_000
	// MaxSpan is the longest accepted Window, Lockout and MaxDelay.
	MaxSpan = 366 * 24 * time.Hour
	// minDuration is the shortest Window and Lockout: Redis expires keys
	// with millisecond resolution, so anything shorter would round to 0.
	minDuration = time.Millisecond
)

// Options configures a Guard. Zero values of optional fields take the
// documented defaults; New reports every invalid field at once.
type Options struct {
	// MaxFailures is how many failures of one username within Window lock
	// it: the MaxFailures-th failure engages the lock, so the next attempt
	// is refused. Required, in [1, MaxFailuresLimit].
	MaxFailures int
	// MaxClientFailures is the same limit for one client address, across
	// all usernames. 0 means DefaultClientFailuresFactor × MaxFailures.
	MaxClientFailures int
	// Window is the fixed counting window, starting at a subject's first
	// failure. Required, in [1ms, MaxSpan].
	Window time.Duration
	// Lockout is how long a lock lasts; 0 means Window. In [1ms, MaxSpan].
	Lockout time.Duration
	// Delay is the progressive delay base: after k ≥ 1 failures the next
	// attempt is held Delay × 2^(k-1), k being the larger of the username's
	// and the client address's counts. 0 disables delays.
	Delay time.Duration
	// MaxDelay caps the progressive delay; 0 means DefaultMaxDelay. Delay
	// must not exceed it.
	MaxDelay time.Duration
	// MaxUsernamesPerClient is the credential-stuffing threshold: more
	// distinct failing usernames from one client address within its window
	// flag that address. 0 means DefaultMaxUsernamesPerClient; at most
	// MaxDistinctThreshold.
	MaxUsernamesPerClient int
	// MaxClientsPerUsername is the distributed-attack threshold: failures
	// of one username from more distinct client addresses within its window
	// flag that username. 0 means DefaultMaxClientsPerUsername; at most
	// MaxDistinctThreshold.
	MaxClientsPerUsername int
	// Now is not read by the Guard, which takes every remaining duration
	// from its Store (Local has its own clock, Redis uses the server's). It
	// is carried so that one Options value can hand the same clock to
	// LocalOptions.Now; nil means time.Now.
	Now func() time.Time
}

// Reason says why an attempt is refused.
type Reason string

// Reasons, in the order that breaks ties between equally long blocks.
const (
	// ReasonNone: the attempt is not refused.
	ReasonNone Reason = ""
	// ReasonUsernameLocked: the username reached MaxFailures.
	ReasonUsernameLocked Reason = "username_locked"
	// ReasonClientLocked: the client address reached MaxClientFailures.
	ReasonClientLocked Reason = "client_locked"
	// ReasonDistributedAttack: the username failed from more than
	// MaxClientsPerUsername client addresses in its window.
	ReasonDistributedAttack Reason = "distributed_attack"
	// ReasonCredentialStuffing: the client address failed with more than
	// MaxUsernamesPerClient usernames in its window.
	ReasonCredentialStuffing Reason = "credential_stuffing"
)

// Verdict is the Guard's answer for one attempt: from Check, about this
// attempt; from Failure, about the next one.
type Verdict struct {
	// Block says the attempt must be refused (the gateway answers 429).
	Block bool
	// Reason is why; when several blocks apply, the one that lasts longest
	// (ties in the order of the Reason constants).
	Reason Reason
	// RetryAfter is, when blocked, the time until the binding block ends.
	RetryAfter time.Duration
	// Delay is, when not blocked, how long to hold the attempt first.
	Delay time.Duration
	// Failures is the username's current failure count, for logs and
	// metrics (0 after a served lock, until the next failure).
	Failures int
	// LockedNow is set by Failure only, when this very failure engaged the
	// username or client lock: the caller logs and counts the lockout
	// moment exactly once.
	LockedNow bool
}

// Alert reports that a Failure crossed a credential-stuffing or distributed
// attack threshold. It is raised exactly once per crossing per window.
type Alert struct {
	// Reason is ReasonCredentialStuffing or ReasonDistributedAttack.
	Reason Reason
	// Count is the number of distinct usernames (stuffing) or client
	// addresses (distributed) seen in the window at the crossing.
	Count int
}

// Guard decides login attempts from the state kept in a Store. It is safe
// for concurrent use and holds no state of its own.
type Guard struct {
	store    Store
	p        Policy
	delay    time.Duration
	maxDelay time.Duration
}

// New returns a Guard over store. It reports every invalid option at once,
// joined, each wrapping ErrInvalidOptions.
func New(store Store, o Options) (*Guard, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	if store == nil {
		bad("store is nil")
	}
	if o.MaxFailures < 1 || o.MaxFailures > MaxFailuresLimit {
		bad("max failures %d outside [1, %d]", o.MaxFailures, MaxFailuresLimit)
	}
	if o.MaxClientFailures < 0 || o.MaxClientFailures > MaxFailuresLimit {
		bad("max client failures %d outside [0, %d]", o.MaxClientFailures, MaxFailuresLimit)
	}
	if o.Window < minDuration || o.Window > MaxSpan {
		bad("window %s outside [%s, %s]", o.Window, minDuration, MaxSpan)
	}
	if o.Lockout != 0 && (o.Lockout < minDuration || o.Lockout > MaxSpan) {
		bad("lockout %s outside [%s, %s] (0 means the window)", o.Lockout, minDuration, MaxSpan)
	}
	if o.Delay < 0 {
		bad("delay %s is negative", o.Delay)
	}
	if o.MaxDelay < 0 || o.MaxDelay > MaxSpan {
		bad("max delay %s outside [0, %s]", o.MaxDelay, MaxSpan)
	}
	if o.MaxUsernamesPerClient < 0 || o.MaxUsernamesPerClient > MaxDistinctThreshold {
		bad("max usernames per client %d outside [0, %d]", o.MaxUsernamesPerClient, MaxDistinctThreshold)
	}
	if o.MaxClientsPerUsername < 0 || o.MaxClientsPerUsername > MaxDistinctThreshold {
		bad("max clients per username %d outside [0, %d]", o.MaxClientsPerUsername, MaxDistinctThreshold)
	}
	o = o.withDefaults()
	if o.Delay > o.MaxDelay {
		bad("delay %s exceeds max delay %s", o.Delay, o.MaxDelay)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Guard{
		store: store,
		p: Policy{
			Window:                o.Window,
			Lockout:               o.Lockout,
			MaxFailures:           o.MaxFailures,
			MaxClientFailures:     o.MaxClientFailures,
			MaxUsernamesPerClient: o.MaxUsernamesPerClient,
			MaxClientsPerUsername: o.MaxClientsPerUsername,
		},
		delay:    o.Delay,
		maxDelay: o.MaxDelay,
	}, nil
}

// withDefaults fills the zero optional fields of o.
func (o Options) withDefaults() Options {
	if o.MaxClientFailures == 0 {
		o.MaxClientFailures = DefaultClientFailuresFactor * o.MaxFailures
	}
	if o.Lockout == 0 {
		o.Lockout = o.Window
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxUsernamesPerClient == 0 {
		o.MaxUsernamesPerClient = DefaultMaxUsernamesPerClient
	}
	if o.MaxClientsPerUsername == 0 {
		o.MaxClientsPerUsername = DefaultMaxClientsPerUsername
	}
	return o
}

// Policy reports the windows and thresholds the Guard enforces, defaults
// applied.
func (g *Guard) Policy() Policy { return g.p }

// Check decides an attempt of user from client before it is forwarded. user
// may be empty when no username could be extracted: only the client
// address's locks and flag apply then. An error comes only from the Store
// (a cancelled context, or a shared store failing without failover); the
// Verdict is then zero and the caller chooses to fail open or closed.
func (g *Guard) Check(ctx context.Context, user, client string) (Verdict, error) {
	st, err := g.store.State(ctx, user, client)
	if err != nil {
		return Verdict{}, err
	}
	return g.verdict(st, user, client), nil
}

// Failure records one failed attempt of user from client. The Verdict is
// about the next attempt of the pair (so the caller can log the lockout
// moment, see Verdict.LockedNow); the Alerts report thresholds crossed by
// this very failure, each exactly once per window.
func (g *Guard) Failure(ctx context.Context, user, client string) (Verdict, []Alert, error) {
	st, err := g.store.RecordFailure(ctx, user, client, g.p)
	if err != nil {
		return Verdict{}, nil, err
	}
	v := g.verdict(st, user, client)
	v.LockedNow = (user != "" && st.User.LockedNow) || (client != "" && st.Client.LockedNow)
	var alerts []Alert
	if client != "" && st.Client.FlaggedNow {
		alerts = append(alerts, Alert{Reason: ReasonCredentialStuffing, Count: st.Client.Distinct})
	}
	if user != "" && st.User.FlaggedNow {
		alerts = append(alerts, Alert{Reason: ReasonDistributedAttack, Count: st.User.Distinct})
	}
	return v, alerts, nil
}

// Success records a successful login: it clears the username's failure
// count, so that a user who mistyped a few times starts afresh. It clears
// neither an active username lock nor anything about the client address:
// an attacker who owns one account (or guesses one password) could
// otherwise log in to it between guesses and reset the counters that limit
// the attack on other accounts from the same address, or lift a lock that
// a guessing attack caused. client is accepted for symmetry and unused.
func (g *Guard) Success(ctx context.Context, user, client string) error {
	_ = client
	if user == "" {
		return nil
	}
	return g.store.Reset(ctx, user)
}

// verdict turns a State into a Verdict.
func (g *Guard) verdict(st State, user, client string) Verdict {
	if user == "" {
		st.User = Subject{}
	}
	if client == "" {
		st.Client = Subject{}
	}
	uf := live(st.User, g.p.MaxFailures)
	cf := live(st.Client, g.p.MaxClientFailures)
	v := Verdict{Failures: uf}
	blocks := [...]struct {
		r Reason
		d time.Duration
	}{
		{ReasonUsernameLocked, st.User.Locked},
		{ReasonClientLocked, st.Client.Locked},
		{ReasonDistributedAttack, st.User.Flagged},
		{ReasonCredentialStuffing, st.Client.Flagged},
	}
	for _, b := range blocks {
		if b.d > v.RetryAfter {
			v.Block, v.Reason, v.RetryAfter = true, b.r, b.d
		}
	}
	if !v.Block {
		v.Delay = g.delayAfter(max(uf, cf))
	}
	return v
}

// live is a subject's effective failure count: a count at or above the
// limit without an active lock belongs to a lock already served, and the
// subject has its full budget back.
func live(s Subject, limit int) int {
	if s.Locked <= 0 && s.Failures >= limit {
		return 0
	}
	return s.Failures
}

// delayAfter is the progressive delay after k failures: Delay × 2^(k-1),
// capped at MaxDelay; 0 when k < 1 or delays are off.
func (g *Guard) delayAfter(k int) time.Duration {
	if g.delay <= 0 || k < 1 {
		return 0
	}
	d := g.delay
	for i := 1; i < k && d < g.maxDelay; i++ {
		d *= 2 // d < maxDelay ≤ MaxSpan: no overflow
	}
	return min(d, g.maxDelay)
}
