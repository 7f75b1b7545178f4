// Package ratelimit decides whether a keyed event may proceed under a rate
// limit, using the Generic Cell Rate Algorithm (GCRA).
//
// It is the storage foundation of the rate-limit stage: a Store answers one
// question per request, and the stage turns the Result into a 429 with
// Retry-After and the RateLimit / RateLimit-Policy headers of the IETF httpapi
// draft. This package does no HTTP and reads no configuration files.
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
package ratelimit
