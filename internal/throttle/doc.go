// Package throttle is the gateway's per-API concurrency limiter and load
// shedder in front of an upstream: a limit on in-flight requests, a bounded
// FIFO wait queue with a timeout, and optionally an adaptive limit that
// backs off when upstream latency rises, so that a flood is shed at the
// gateway instead of taking the upstream down.
//
// A request calls Limiter.Acquire before the upstream call and
// Token.Release(latency, outcome) after it. Acquire either grants a slot,
// waits in the queue, or sheds the request with ErrQueueFull or
// ErrQueueTimeout; the gateway turns those into 503 with Retry-After. This
// package does no HTTP and reads no configuration files.
//
// # Slots and the queue
//
// A Limiter grants at most Limit slots at a time; Limit is MaxConcurrency,
// or the adaptive limit described below, and never more than
// MaxConcurrency. A request that finds no free slot joins a FIFO queue of at
// most QueueSize waiters; when the queue is full it is shed at once with
// ErrQueueFull. A waiter gives up after QueueTimeout (ErrQueueTimeout) or
// when its context ends (ctx.Err()). New requests never overtake waiters:
// while anyone waits, Acquire queues even if a slot happens to be free.
// Limiter.TryAcquire takes a free slot without ever waiting.
//
// Everything is guarded by one mutex. Each waiter owns a channel with a
// buffer of one; a release that frees capacity removes the head waiter from
// the queue and sends it a Token, both under the mutex, so the send never
// blocks and no goroutine is started per request. A waiter that wakes for
// its timeout or context takes the mutex and looks whether it is still
// queued: if so it leaves the queue; if not, a release granted it a slot in
// the meantime, and the Token already sits in its channel, so it releases
// that slot to the next waiter and returns its error. A slot therefore
// cannot leak, whatever the interleaving.
//
// When the adaptive limit drops below the number in flight nobody is
// evicted: releases simply do not hand slots on until InFlight is below the
// new limit.
//
// A Token is a value (no allocation on the uncontended path) naming a slot
// and the slot's generation. Release succeeds only while the generation
// matches and then bumps it, so releasing a Token twice, or releasing a
// copy, is a no-op even after the slot was granted to someone else.
//
// # Adaptive limit
//
// With Adaptive set, the limit is a float in [MinConcurrency,
// MaxConcurrency] (exposed as its floor), starting at MaxConcurrency: the
// ceiling is what the operator declared safe, and starting low would shed
// legitimate traffic after every restart. It follows AIMD, driven by the
// samples given to Release:
//
//   - Success feeds its latency to two estimates: a short-term EMA over
//     about 10 samples (weight 1/10), and a baseline, a slow EMA over about
//     1000 samples (weight 1/1000) that is capped by the short-term EMA.
//     The baseline thus falls as fast as the short-term latency but rises
//     about a hundred times slower: it tracks the no-load latency, is
//     moved by only ~10% of the excess over a hundred congested requests,
//     yet follows a lasting change of the upstream (a failover to a farther
//     site) within several hundred to a few thousand requests, so the limit
//     is not pinned to the floor forever. Latencies below 1µs count as 1µs,
//     so the baseline is never 0.
//   - Failure (upstream error, timeout, 5xx) is congestion regardless of
//     its latency, which is not fed to the estimates: a fast error would
//     drag the baseline down and make healthy latencies look congested.
//   - Ignore (and any unknown Outcome) feeds nothing; the slot is freed.
//
// After a Success the upstream is congested when the short-term latency
// exceeds the threshold: TargetLatency if set, else Tolerance × baseline.
// Comparing the smoothed latency rather than the sample means one slow
// outlier does not count. Before the first Success sample only Failures
// count; a learned baseline starts from whatever the upstream showed first,
// so a Limiter started against an already congested upstream takes that
// latency as normal until the upstream recovers, when the baseline follows
// the falling short-term latency down.
//
// On congestion the limit is multiplied by 0.9, never below MinConcurrency,
// but at most once per window, where the window is the current short-term
// latency, at least 1ms. That is the time the upstream needs before the
// effect of the previous decrease shows in the samples; the slow responses
// of a burst that was already in flight all land within one window and cost
// one decrease, not a collapse to the floor. The clock is Options.Now.
//
// After an uncongested Success, the limit grows by 1/limit, i.e. by one per
// limit's worth of successes, never above MaxConcurrency, but only if the
// Limiter was used near its limit when the slot was granted: InFlight was at
// least half the limit, or the request came through the queue. Otherwise an
// idle gateway would ratchet the limit up to the ceiling on samples that
// say nothing about the upstream under load, and the limit stays within
// about twice the concurrency actually seen. Climbing from L to 2L thus
// takes about 1.5·L² successes under load.
//
// # Defaults
//
//   - QueueTimeout 0 means DefaultQueueTimeout, 1s: a request queued for
//     longer is better shed with a Retry-After than kept holding a client
//     connection and gateway memory; 1s is well inside common client
//     timeouts, so the client still gets a clean answer. The timeout is
//     measured with real timers, not Options.Now.
//   - QueueSize 0 means no queue: a request is shed as soon as no slot is
//     free.
//   - MinConcurrency 0 means MaxConcurrency/10, at least 1: a noisy latency
//     signal can then cost at most 90% of the configured concurrency, and the
//     limit climbs back from a non-trivial floor instead of serializing all
//     traffic through one slot.
//   - Tolerance 0 means DefaultTolerance, 2.0: doubling of the latency is a
//     clear congestion signal well above ordinary jitter; set values must be
//     above 1, or the baseline itself would count as congestion.
//   - TargetLatency 0 means the learned threshold Tolerance × baseline.
//   - Now nil means time.Now, whose monotonic reading keeps the decrease
//     window immune to wall-clock steps.
//
// Fields used only by the adaptive limit are validated even when Adaptive
// is false. When Adaptive is false the limit is always MaxConcurrency and
// latencies and outcomes are ignored.
package throttle
