package bruteforce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix prefixes every key when NewRedis is given "".
const DefaultRedisPrefix = "bulwark:bf:"

// Key layout: prefix + "{" + tag + ":" + id + "}:" + suffix. The braces are
// a Redis Cluster hash tag, so the four keys of one subject share a slot
// and one script can touch them atomically.
const (
	tagUser     = "u"
	tagClient   = "c"
	suffixCount = "f" // string: failure count, PX = window from the first failure
	suffixLock  = "l" // string: present while locked, PX = lockout
	suffixSet   = "s" // set: distinct counterparts, PEXPIRE = window from the first member
	suffixFlag  = "a" // string: present while flagged, PX = the set's remaining TTL
)

// recordFields is the length of the record script's reply.
const recordFields = 6

// recordLua records one failure of one subject; see Store.RecordFailure.
// KEYS: 1 count, 2 lock, 3 distinct set, 4 flag.
// ARGV: 1 counterpart ("" for none), 2 failure limit, 3 distinct threshold,
// 4 set cap, 5 window (ms), 6 lockout (ms).
// Reply: {count, lock ms left, locked now, set size, flag ms left, flagged now}.
const recordLua = `
local limit = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])

local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local locked = redis.call('PTTL', KEYS[2])
local lockedNow = 0
if locked <= 0 then
  locked = 0
  if count >= limit then count = 0 end
  if count == 0 then
    redis.call('SET', KEYS[1], 1, 'PX', ARGV[5])
    count = 1
  else
    count = redis.call('INCR', KEYS[1])
  end
  if count >= limit then
    redis.call('SET', KEYS[2], 1, 'PX', ARGV[6])
    locked = tonumber(ARGV[6])
    lockedNow = 1
  end
end

local card = redis.call('SCARD', KEYS[3])
local flagged = redis.call('PTTL', KEYS[4])
if flagged < 0 then flagged = 0 end
local flaggedNow = 0
if ARGV[1] ~= '' then
  if card < cap and redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
    card = card + 1
    if card == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
  end
  if card > threshold and flagged == 0 then
    local ttl = redis.call('PTTL', KEYS[3])
    if ttl > 0 then
      redis.call('SET', KEYS[4], 1, 'PX', ttl)
      flagged = ttl
      flaggedNow = 1
    end
  end
end
return {count, locked, lockedNow, card, flagged, flaggedNow}
`

// recordScript is sent by digest (EVALSHA) and by source when the server
// does not know it yet.
var recordScript = redis.NewScript(recordLua)

// Redis is a Store shared by all gateway replicas. Each subject is updated
// by one Lua script (atomic); the username's and the client address's
// scripts go out in one pipeline, one round trip. Every key expires by
// itself. It is safe for concurrent use.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client (a single node, a failover or a
// cluster client) whose keys all start with prefix; "" means
// DefaultRedisPrefix.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &Redis{client: client, prefix: prefix}
}

// subjectKeys are the four keys of one subject, in the script's KEYS order.
func (r *Redis) subjectKeys(tag, id string) []string {
	base := r.prefix + "{" + tag + ":" + id + "}:"
	return []string{base + suffixCount, base + suffixLock, base + suffixSet, base + suffixFlag}
}

// recordCall is one subject's script invocation and where its reply goes.
type recordCall struct {
	keys []string
	args []any
	out  *Subject
	cmd  *redis.Cmd
}

// RecordFailure implements Store: one Lua script per non-empty subject, both
// in one pipeline. Errors wrap ErrStore (and the client's error).
func (r *Redis) RecordFailure(ctx context.Context, user, client string, p Policy) (State, error) {
	if err := p.check(); err != nil {
		return State{}, err
	}
	window, lockout := p.Window.Milliseconds(), p.Lockout.Milliseconds()
	var st State
	calls := make([]*recordCall, 0, 2)
	if user != "" {
		calls = append(calls, &recordCall{
			keys: r.subjectKeys(tagUser, user),
			args: []any{client, p.MaxFailures, p.MaxClientsPerUsername, setCap(p.MaxClientsPerUsername), window, lockout},
			out:  &st.User,
		})
	}
	if client != "" {
		calls = append(calls, &recordCall{
			keys: r.subjectKeys(tagClient, client),
			args: []any{user, p.MaxClientFailures, p.MaxUsernamesPerClient, setCap(p.MaxUsernamesPerClient), window, lockout},
			out:  &st.Client,
		})
	}
	if len(calls) == 0 {
		return st, nil
	}
	r.run(ctx, calls, recordScript.EvalSha)
	// A server that has not cached the script rejects EVALSHA without
	// running it: send the source for exactly those calls.
	var again []*recordCall
	for _, c := range calls {
		if isNoScript(c.cmd.Err()) {
			again = append(again, c)
		}
	}
	if len(again) > 0 {
		r.run(ctx, again, recordScript.Eval)
	}
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil {
			return State{}, fmt.Errorf("%w: record failure: %w", ErrStore, err)
		}
		v, err := c.cmd.Int64Slice()
		if err != nil || len(v) != recordFields {
			return State{}, fmt.Errorf("%w: record failure: unexpected reply %v (%v)", ErrStore, c.cmd.Val(), err)
		}
		*c.out = Subject{
			Failures:   int(v[0]),
			Locked:     time.Duration(v[1]) * time.Millisecond,
			LockedNow:  v[2] == 1,
			Distinct:   int(v[3]),
			Flagged:    time.Duration(v[4]) * time.Millisecond,
			FlaggedNow: v[5] == 1,
		}
	}
	return st, nil
}

// run pipelines calls with eval. Errors, including a failure of the whole
// pipeline, stay on the commands for the caller to inspect.
func (r *Redis) run(ctx context.Context, calls []*recordCall,
	eval func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd) {
	_, _ = r.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, c := range calls {
			c.cmd = eval(ctx, pipe, c.keys, c.args...)
		}
		return nil
	})
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

// subjectRef is one subject's keys and where its state goes.
type subjectRef struct {
	keys []string
	out  *Subject
}

// readCmds are one subject's read commands and where their result goes.
type readCmds struct {
	count *redis.StringCmd
	lock  *redis.DurationCmd
	card  *redis.IntCmd
	flag  *redis.DurationCmd
	out   *Subject
}

// State implements Store: four plain reads per non-empty subject, all in
// one pipeline. Errors wrap ErrStore (and the client's error).
func (r *Redis) State(ctx context.Context, user, client string) (State, error) {
	var st State
	subjects := make([]subjectRef, 0, 2)
	if user != "" {
		subjects = append(subjects, subjectRef{r.subjectKeys(tagUser, user), &st.User})
	}
	if client != "" {
		subjects = append(subjects, subjectRef{r.subjectKeys(tagClient, client), &st.Client})
	}
	if len(subjects) == 0 {
		return st, nil
	}
	reads := make([]readCmds, len(subjects))
	_, err := r.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, s := range subjects {
			reads[i] = readCmds{
				count: pipe.Get(ctx, s.keys[0]),
				lock:  pipe.PTTL(ctx, s.keys[1]),
				card:  pipe.SCard(ctx, s.keys[2]),
				flag:  pipe.PTTL(ctx, s.keys[3]),
				out:   s.out,
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return State{}, fmt.Errorf("%w: read state: %w", ErrStore, err)
	}
	for _, rc := range reads {
		n, err := rc.count.Int()
		if err != nil && !errors.Is(err, redis.Nil) {
			return State{}, fmt.Errorf("%w: read state: failure count: %w", ErrStore, err)
		}
		for _, c := range []redis.Cmder{rc.lock, rc.card, rc.flag} {
			if err := c.Err(); err != nil {
				return State{}, fmt.Errorf("%w: read state: %w", ErrStore, err)
			}
		}
		*rc.out = Subject{
			Failures: n,
			Locked:   max(rc.lock.Val(), 0), // -1ns / -2ns: no expiry / no key
			Distinct: int(rc.card.Val()),
			Flagged:  max(rc.flag.Val(), 0),
		}
	}
	return st, nil
}

// Reset implements Store: it deletes the username's failure count only.
// Errors wrap ErrStore (and the client's error).
func (r *Redis) Reset(ctx context.Context, user string) error {
	if user == "" {
		return nil
	}
	if err := r.client.Del(ctx, r.subjectKeys(tagUser, user)[0]).Err(); err != nil {
		return fmt.Errorf("%w: reset: %w", ErrStore, err)
	}
	return nil
}
