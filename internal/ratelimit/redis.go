package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// DefaultRedisPrefix namespaces every key the Redis store writes when
	// RedisOptions.Prefix is empty.
	DefaultRedisPrefix = "bulwark:rl:"

	// redisMaxTolerance bounds τ in the Redis store at 2^50 µs (about 35
	// years). The script holds times as Lua numbers (float64), exact up to
	// 2^53: a TAT is at most now + 2τ, and now stays below 2^52 µs until the
	// year 2112, so every value the script computes is an exact integer.
	redisMaxTolerance = 1 << 50 // microseconds

	// quotaExpiryMargin keeps a quota counter this long after its window
	// ends. A replica whose clock runs behind still finds the ended
	// window's counter (and decides as before) instead of a fresh one it
	// could fill again; ten minutes is far beyond the skew of any
	// NTP-synchronised host and costs one idle counter per key meanwhile.
	quotaExpiryMargin = 10 * time.Minute
)

// gcraLua decides one GCRA request atomically, on the Redis server's clock.
//
//	KEYS[1]  the key's TAT: integer microseconds since the Unix epoch
//	ARGV[1]  T, the emission interval in whole microseconds (≥ 1)
//	ARGV[2]  τ = T × Burst, in microseconds
//	ARGV[3]  n, the events requested (0 reads)
//
// It returns {allowed (1 or 0), TAT − now after the decision, allowAt − now
// when denied else 0}, all in microseconds. Only an allowed request with
// n ≥ 1 writes, with a PX expiry at the new TAT (at least 1ms), so that the
// key vanishes once it is idle. A missing or unreadable value counts as
// idle. replicate_commands makes Redis < 5 replicate the SET rather than
// the script, whose TIME call is not deterministic; later versions always
// do so and the call is a no-op there.
const gcraLua = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local newTAT = tat + n * interval
local allowAt = newTAT - tau
if allowAt > now then
  return {0, tat - now, allowAt - now}
end
if n > 0 then
  tat = newTAT
  local ttl = math.ceil((tat - now) / 1000)
  if ttl < 1 then ttl = 1 end
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%.0f', ttl))
end
return {1, tat - now, 0}
`

// gcraBatchLua decides the requests of one batch atomically, in order, on
// one reading of the Redis server's clock, with gcraLua's arithmetic for
// each.
//
//	KEYS[i]        request i's TAT key
//	ARGV[4i-3..4i] its T and τ in microseconds, n, and 1 when its denial
//	               does not end the batch (ContinueOnDeny) else 0
//
// It returns gcraLua's three values for each request decided, flattened:
// all of them, or up to the first denial of a request whose flag is 0.
// Each request reads its key afresh, so a key named twice sees the first
// request's write.
const gcraBatchLua = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
  local a = (i - 1) * 4
  local interval = tonumber(ARGV[a + 1])
  local tau = tonumber(ARGV[a + 2])
  local n = tonumber(ARGV[a + 3])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if not tat or tat < now then tat = now end
  local newTAT = tat + n * interval
  local allowAt = newTAT - tau
  local o = #out
  if allowAt > now then
    out[o + 1] = 0
    out[o + 2] = tat - now
    out[o + 3] = allowAt - now
    if ARGV[a + 4] ~= '1' then return out end
  else
    if n > 0 then
      tat = newTAT
      local ttl = math.ceil((tat - now) / 1000)
      if ttl < 1 then ttl = 1 end
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', string.format('%.0f', ttl))
    end
    out[o + 1] = 1
    out[o + 2] = tat - now
    out[o + 3] = 0
  end
end
return out
`

// quotaLua counts events against one key's counter for one window.
//
//	KEYS[1]  the counter of one key in one calendar window
//	ARGV[1]  the quota's limit
//	ARGV[2]  n, the events requested (0 reads)
//	ARGV[3]  when the counter expires, Unix milliseconds
//
// It returns {allowed (1 or 0), the count after the decision}. INCRBY runs
// only when the count stays within the limit, so a denial counts nothing.
const quotaLua = `
local limit = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1])) or 0
if used + n > limit then
  return {0, used}
end
if n > 0 then
  used = redis.call('INCRBY', KEYS[1], ARGV[2])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return {1, used}
`

// RedisOptions configures a Redis store.
type RedisOptions struct {
	// Prefix is prepended to every key; empty means DefaultRedisPrefix.
	Prefix string
	// Now is the clock that places quota events in calendar windows (rate
	// limits always use the Redis server's clock); nil means time.Now.
	// Tests inject a fake.
	Now func() time.Time
}

// Redis is a Store, BatchStore and QuotaStore kept in Redis, shared by
// every gateway replica. Each decision, and each batch of decisions, is one
// Lua script run (EVALSHA, falling back to EVAL when the server does not
// have the script cached), atomic on the server. It is safe for concurrent
// use.
//
// Rate-limit keys are Prefix+"r:"+key and quota counters
// Prefix+"q:"+key+":"+window, so the two can never collide whatever bytes
// a key holds. See the package documentation for the clock and rounding.
type Redis struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time
	gcra   *redis.Script
	batch  *redis.Script
	quota  *redis.Script
}

var (
	_ Store      = (*Redis)(nil)
	_ QuotaStore = (*Redis)(nil)
)

// NewRedis returns a store on client. It does not contact Redis: the first
// decision does, loading the scripts if needed. The caller owns client and
// configures its timeouts; a decision waits at most as long as client and
// the caller's context allow.
func NewRedis(client redis.UniversalClient, o RedisOptions) *Redis {
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Redis{
		client: client,
		prefix: prefix,
		now:    now,
		gcra:   redis.NewScript(gcraLua),
		batch:  redis.NewScript(gcraBatchLua),
		quota:  redis.NewScript(quotaLua),
	}
}

// redisInterval returns T and τ in whole microseconds for the Redis store:
// T rounded up (see the package documentation), τ = T × Burst.
func redisInterval(l Limit) (t, tau int64, err error) {
	t = (int64(l.Interval()) + int64(time.Microsecond) - 1) / int64(time.Microsecond)
	if int64(l.Burst) > redisMaxTolerance/t {
		return 0, 0, fmt.Errorf("%w: burst %d at one event per %dµs spans more than the Redis store's %dµs",
			ErrInvalidLimit, l.Burst, t, int64(redisMaxTolerance))
	}
	return t, t * int64(l.Burst), nil
}

// Allow decides n events for key under l on the Redis server's clock, with
// the same semantics and Result as Local (to the microsecond; see the
// package documentation). Invalid arguments are reported before any round
// trip and wrap ErrInvalidLimit or ErrExceedsBurst; every other error —
// connection, timeout, cancelled context, script failure — is a transport
// error wrapped as "ratelimit: redis: ..." that wraps neither.
func (r *Redis) Allow(ctx context.Context, key string, l Limit, n int) (Result, error) {
	if err := checkAllow(l, n); err != nil {
		return Result{}, err
	}
	t, tau, err := redisInterval(l)
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	reply, err := r.gcra.Run(ctx, r.client, []string{r.prefix + "r:" + key}, t, tau, n).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(reply) != 3 {
		return Result{}, fmt.Errorf("ratelimit: redis: GCRA script returned %d values, want 3", len(reply))
	}
	return gcraResult(l, t, tau, reply), nil
}

// gcraResult builds the Result of one decision from the script's three
// values (allowed, TAT − now, allowAt − now) and the request's T and τ.
func gcraResult(l Limit, t, tau int64, reply []int64) Result {
	allowed, reset, retry := reply[0] == 1, reply[1], reply[2]
	res := Result{Allowed: allowed, Limit: l}
	if rem := (tau - reset) / t; rem > 0 {
		res.Remaining = int(rem)
	}
	if !allowed {
		res.RetryAfter = time.Duration(retry) * time.Microsecond
	}
	if reset > 0 {
		res.ResetAfter = time.Duration(reset) * time.Microsecond
	}
	return res
}

// AllowAll decides a batch as BatchStore documents, in one round trip: one
// run of a script that decides every request in order, atomically, on one
// reading of the server's clock, with Allow's arithmetic and keys (so
// replicas running Allow and replicas running AllowAll share counters).
// Arguments are checked before the round trip; every other error is a
// transport error for the whole batch, returned with no results.
//
// The one-script path needs every key on one server. It is taken with a
// *redis.Client — one server, as internal/cluster opens (a Sentinel
// failover client is one too). A Redis Cluster client (or a Ring) spreads
// keys over nodes by hash slot, and the keys of a request's limits almost
// never share a slot; a hash tag would rename the keys and split counters
// with replicas that do not batch. With any client other than *redis.Client
// AllowAll therefore makes one Allow round trip per request, with the same
// semantics.
func (r *Redis) AllowAll(ctx context.Context, reqs []Request) ([]Result, error) {
	if err := checkAll(reqs); err != nil {
		return nil, err
	}
	keys := make([]string, len(reqs))
	args := make([]any, 0, 4*len(reqs))
	for i, q := range reqs {
		t, tau, err := redisInterval(q.Limit)
		if err != nil {
			return nil, err
		}
		cont := 0
		if q.ContinueOnDeny {
			cont = 1
		}
		keys[i] = r.prefix + "r:" + q.Key
		args = append(args, t, tau, q.N, cont)
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	if _, single := r.client.(*redis.Client); !single || len(reqs) == 1 {
		return allowEach(ctx, r, reqs)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ratelimit: redis: %w", err)
	}
	reply, err := r.batch.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("ratelimit: redis: %w", err)
	}
	k := len(reply) / 3
	if len(reply)%3 != 0 || k == 0 || k > len(reqs) || (k < len(reqs) && (reply[len(reply)-3] == 1 || reqs[k-1].ContinueOnDeny)) {
		return nil, fmt.Errorf("ratelimit: redis: batch GCRA script returned %d values for %d requests", len(reply), len(reqs))
	}
	out := make([]Result, k)
	for i := range out {
		t, tau := args[4*i].(int64), args[4*i+1].(int64)
		out[i] = gcraResult(reqs[i].Limit, t, tau, reply[3*i:3*i+3])
	}
	return out, nil
}

// Take counts n events for key in the current calendar window of q.Period,
// if the count stays within q.Limit. The window is chosen by the store's Go
// clock (see the package documentation). Errors are reported as by Allow.
func (r *Redis) Take(ctx context.Context, key string, q Quota, n int64) (QuotaResult, error) {
	if err := checkTake(q, n); err != nil {
		return QuotaResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return QuotaResult{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	now := r.now()
	id, end := q.Period.window(now)
	k := r.prefix + "q:" + key + ":" + id
	expireAt := end.Add(quotaExpiryMargin).UnixMilli()
	reply, err := r.quota.Run(ctx, r.client, []string{k}, q.Limit, n, expireAt).Int64Slice()
	if err != nil {
		return QuotaResult{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(reply) != 2 {
		return QuotaResult{}, fmt.Errorf("ratelimit: redis: quota script returned %d values, want 2", len(reply))
	}
	res := QuotaResult{Allowed: reply[0] == 1, Quota: q, ResetAfter: end.Sub(now)}
	if rem := q.Limit - reply[1]; rem > 0 {
		res.Remaining = rem
	}
	return res, nil
}
