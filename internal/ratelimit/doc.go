// Package ratelimit decides whether a keyed event may proceed under a rate
// limit, using the Generic Cell Rate Algorithm (GCRA).
//
// It is the storage foundation of the rate-limit stage: a Store answers one
// question per limit, a BatchStore all the limits of one request in one
// call, and the stage turns the Results into a 429 with Retry-After and the
// RateLimit / RateLimit-Policy headers of the IETF httpapi draft. This
// package does no HTTP and reads no configuration files.
//
// # GCRA
//
// A Limit allows Rate events per Period with a Burst. For each key the store
// keeps one number, the theoretical arrival time (TAT): the instant at which
// the key would be completely idle again. With
//
//	T = Period / Rate          (emission interval, truncated to whole nanoseconds)
//	τ = T × Burst              (tolerance)
//
// a request for n ≥ 1 events at instant now is decided as
//
//	newTAT  = max(TAT, now) + n·T
//	allowAt = newTAT − τ
//	allowed ⇔ allowAt ≤ now
//
// and only an allowed request stores TAT = newTAT. A key that has been idle
// (TAT ≤ now) therefore admits exactly Burst single events at one instant —
// the k-th has allowAt = now + k·T − Burst·T, which is ≤ now iff k ≤ Burst —
// and afterwards one event every T. Burst is thus the size of the first burst,
// not "extra events on top of the rate": Limit{Rate: 10, Period: time.Second,
// Burst: 10} allows 10 at once and then one every 100ms, never more than
// Burst + Rate×t events in any window of length t.
//
// The Result is derived from the TAT after the decision:
//
//	Remaining  = floor((now + τ − TAT) / T), clamped at 0
//	                                       single events that would be allowed right now
//	RetryAfter = allowAt − now             when denied (0 when allowed): at exactly
//	                                       now + RetryAfter the same request is allowed
//	ResetAfter = TAT − now, clamped at 0   time until the key is idle (full burst again)
//
// A request for more than Burst events can never be allowed and is reported
// as ErrExceedsBurst rather than as a denial with a meaningless RetryAfter.
// n == 0 is a read: it reports Remaining and ResetAfter without consuming.
//
// # Local store
//
// Local keeps TATs in memory, sharded by a seeded hash of the key, each shard
// behind its own mutex and capped so that the store never holds more than
// MaxKeys keys. Within a shard the entries sit in a min-heap ordered by TAT,
// which gives the eviction order for free: keys whose TAT is in the past carry
// no state (forgetting them changes no decision) and are evicted first; when
// every key is still limited, the key with the earliest TAT — the one closest
// to forgetting its state anyway, i.e. the oldest limiting information — is
// evicted. A client that sprays distinct keys to flush its own throttled key
// loses: sprayed keys have a TAT of now + T, the throttled key a later one.
//
// Time is read only through the injected Now function and measured as a
// duration since an epoch taken at construction, so a monotonic clock reading
// (as time.Now provides) keeps decisions immune to wall-clock steps.
//
// # Redis store
//
// Redis keeps the same TAT in Redis so that every gateway replica shares one
// limit. A decision is one Lua script run (EVALSHA, EVAL when the script is
// not cached), atomic on the server, with the formulas above. Time is the
// Redis server's clock (TIME), so replicas with skewed clocks agree, and the
// TAT is stored as an integer count of microseconds since the Unix epoch
// under Prefix+"r:"+key, with a PX expiry at the TAT (at least 1ms): an idle
// key vanishes, and a read (n == 0) writes nothing.
//
// Because the server clock has microsecond resolution, the script works in
// whole microseconds: T is rounded up to a whole microsecond and τ is that
// T × Burst. For any limit whose T is a whole number of microseconds (100/s,
// 5/m, 1000/h, 10000/d: any Period a multiple of Rate microseconds) the
// decisions and the Result are Local's on a clock that ticks in
// microseconds. Otherwise decisions at one instant are still Local's
// (exactly Burst single events, the same Remaining), and each event costs
// less than 1µs more than in Local, so Redis is never more lenient:
// 3/s refills one event every 333334µs instead of 333333333ns. A rate finer
// than one event per microsecond per key refills at one per microsecond.
// τ is capped at 2^50µs (35 years) so the script's float64 arithmetic stays
// exact.
//
// A batch (BatchStore.AllowAll: the limits of one HTTP request) is one run
// of a second script that decides each Request in order with the same
// arithmetic, keys and expiry, on one reading of TIME, atomically: one
// round trip however many limits apply. Replicas that batch and replicas
// that do not share counters. The script needs all the keys on one server,
// so it runs only on a *redis.Client (the client internal/cluster opens);
// with a Cluster client or a Ring, whose keys spread over nodes by hash
// slot, AllowAll makes one round trip per Request of the batch instead.
//
// Arguments are validated in Go before any round trip. Every other failure
// (dial, timeout, cancelled context, script error) is returned as
// "ratelimit: redis: ..." and wraps neither ErrInvalidLimit nor
// ErrExceedsBurst, so a caller can tell "bad request" from "store down".
//
// # Batches
//
// AllowAll decides a list of Requests exactly as a loop of Allow calls
// would: in order, stopping at the first denial of a request without
// ContinueOnDeny (a limit in monitor mode sets it: its refusal is recorded
// and counting goes on), the requests before the denial keeping their
// counts. It returns the results of the requests decided; their arguments
// are all checked before anything is decided. Local loops over Allow;
// Redis runs one script; Failover hands the whole batch to the primary and,
// when the primary fails, the requests it did not decide to the fallback
// policy.
//
// # Quotas
//
// A Quota allows Limit events per UTC calendar day or month for each key
// ("10000/day", "250000/month"); the whole allowance comes back at 00:00 UTC
// (on the 1st, for a month). QuotaStore.Take counts n events only if the
// window's count stays within Limit, so a denial consumes nothing; n == 0
// reads. ResetAfter is the time until the window ends.
//
// LocalQuotas keeps one counter per key and period in memory, sharded and
// capped at MaxKeys like Local: when full, counters of ended windows go
// first, then the counter with the lowest count (whose loss forgives the
// fewest events). Redis keeps one counter per key and window under
// Prefix+"q:"+key+":"+window ("d20260131", "m202601"), incremented only
// when it stays within the limit and expiring ten minutes after the window
// ends. The window is chosen with the gateway's own clock, not Redis's:
// calendar arithmetic is simpler in Go and Redis Cluster requires the key to
// be known before the script runs. The trade-off is that a replica whose
// clock is s off counts into the neighbouring window for s around midnight.
//
// # Failover
//
// Failover puts a primary store (Redis) in front of a fallback, guarded by
// a shared Health gate: while the gate is up the primary decides, and a
// transport error marks it down (Health.Observe) and hands the decision to
// the FallbackPolicy — FallbackLocal (a per-replica LocalStores, the
// default), FallbackOpen (allow everything) or FallbackClosed (deny with a
// one-second RetryAfter), for a single decision or a whole batch. While the
// gate is down the primary is not called at all. Argument errors and the
// caller's own cancelled context are returned as they are, without marking
// the store down. Results decided by the fallback have Fallback set.
package ratelimit
