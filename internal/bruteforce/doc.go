// Package bruteforce defends a login operation against password guessing,
// credential stuffing and distributed guessing.
//
// The gateway extracts and hashes the username, resolves the client
// address, and asks a Guard three things: Check before forwarding a login
// attempt, then Failure or Success once it has seen the response. Usernames
// and addresses reach this package as opaque keys; it logs nothing itself
// (Verdict, Alert and the failover callback give the caller what to log).
// It does no HTTP and reads no configuration files.
//
// # Subjects, windows and locks
//
// Two kinds of subject are tracked independently: usernames and client
// addresses. Each has
//
//   - a failure count in a fixed window that starts at the subject's first
//     failure and lasts Window (the key's expiry), after which the count
//     is 0 again. A fixed window costs one counter per subject and is
//     exact in Redis with a single PEXPIRE; its known weakness (up to twice
//     the limit across a window boundary) is covered by the lock, which is
//     engaged as soon as the limit is reached within one window;
//   - a lock: the failure that brings the count to the limit (MaxFailures
//     for a username, MaxClientFailures for an address) engages it for
//     Lockout, so with MaxFailures 5 the 6th attempt is refused. Attempts
//     during a lock are neither counted nor extend it: the lock ends a
//     fixed Lockout after it began, so an attacker cannot keep a victim's
//     account locked for longer than Lockout per MaxFailures guesses, and a
//     legitimate user knows when to come back (RetryAfter). A lock consumes
//     its count: once it has been served, the subject has its whole budget
//     again, and its next failure starts a new window at 1. Otherwise a
//     Lockout shorter than Window would leave a count at the limit that
//     never locks again;
//   - a distinct set: the addresses a username failed from, or the
//     usernames that failed from an address, in a fixed window starting at
//     the set's first member. When the set grows past its threshold
//     (MaxClientsPerUsername, MaxUsernamesPerClient) the subject is flagged
//     until the set's window ends: an address trying many usernames is
//     credential stuffing, a username tried from many addresses is a
//     distributed attack. The crossing is reported once per window as an
//     Alert. Each set is capped at SetCapFactor × threshold members: past
//     the threshold only the flag matters, and the cap bounds memory per
//     subject whatever the attack's size (Alert.Count and Subject.Distinct
//     stay meaningful up to twice the threshold).
//
// A username flagged as under distributed attack is refused from every
// address, its owner included, until the window ends: this trades the
// owner's availability for the account's safety, as a lock does. An empty
// username (none could be extracted) is not a subject: only the address's
// lock and flag apply, and the address's distinct set does not grow. An
// empty address likewise.
//
// Success clears the username's failure count only. It does not lift an
// active lock and does not touch the address: an attacker who owns one
// account could otherwise log in to it between guesses to reset the
// counters limiting the attack on other accounts, or use a guessed
// password to lift the lock its own guessing caused.
//
// # Verdicts
//
// Check and Failure return a Verdict. When several blocks apply (username
// lock, address lock, distributed attack, credential stuffing) the one that
// ends last decides Reason and RetryAfter, since the attempt is refused
// until then; ties go in that order. When nothing blocks, Delay is the
// progressive delay Delay × 2^(k-1) after k ≥ 1 failures, k being the
// larger of the username's and the address's counts, capped at MaxDelay:
// with Delay 100ms, 100ms, 200ms, 400ms, … . It slows guessing down long
// before the lock, and taking the larger count makes a spray of usernames
// from one address as slow as guessing one.
//
// # Defaults
//
//   - Lockout 0 → Window: one knob for the common case; the lock then lasts
//     as long as the evidence that caused it.
//   - MaxClientFailures 0 → DefaultClientFailuresFactor (4) × MaxFailures:
//     one address often fronts many users (NAT, corporate proxies, mobile
//     carriers), so it gets the budget of a few users before it is locked.
//   - MaxDelay 0 → DefaultMaxDelay (2s): a held request ties up a
//     connection and a goroutine in the gateway; past a couple of seconds
//     the lock does the rest, and clients do not time out.
//   - Delay 0 → no delay: holding requests is a choice for the operator.
//   - MaxUsernamesPerClient and MaxClientsPerUsername 0 → 10: a household or
//     office rarely has more than a handful of people mistyping passwords
//     within a window, a stuffing list has thousands of usernames.
//   - MaxFailures and Window have no default: they are policy.
//
// Window and Lockout are at least 1ms (Redis expires keys with millisecond
// resolution and truncates them to it) and at most MaxSpan (366 days, which
// keeps nanosecond arithmetic far from overflow and catches typos that
// would make a lock permanent).
//
// # Stores
//
// Local keeps subjects in memory, sharded by a seeded hash, capped at
// MaxKeys subjects (default DefaultMaxKeys, 100,000: about 50 MB typically,
// 250 MB with every distinct set full); each distinct set is capped too,
// so memory is bounded.
// When a shard is full, an insert evicts an expired subject if there is
// one, otherwise the unblocked subject whose state ends first (the oldest
// evidence, since windows are fixed), and only when every subject is
// locked or flagged the blocked subject that ends first. A flood of
// throwaway usernames therefore cannot flush a lock or a flag unless it
// fills a whole shard with locks and flags of its own. Time is read only
// through LocalOptions.Now, measured from an epoch taken at construction
// (monotonic with time.Now).
//
// Redis is shared by all replicas. Keys start with the prefix given to
// NewRedis (default DefaultRedisPrefix). A subject is four keys sharing a
// Cluster hash tag ({u:<user>} or {c:<address>}): the count (PX Window from
// the first failure), the lock (PX Lockout), the distinct set (PEXPIRE
// Window from its first member) and the flag (PX the set's remaining TTL).
// One Lua script updates one subject atomically; the username's and the
// address's scripts travel in one pipeline, one round trip. Check reads
// with plain GET/PTTL/SCARD in one pipeline. Remaining durations come from
// PTTL, so replicas' clocks do not matter. Keys expire by themselves; none
// outlives max(Window, Lockout).
//
// NewFailover combines the two under the gateway's Redis health gate: a
// Redis failure yields a Local decision, never an error. During an outage
// each replica counts on its own from an empty state, so the effective
// limits are per replica and locks held in Redis are not enforced.
package bruteforce
