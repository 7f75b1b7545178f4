// Package cluster holds the connections a gateway replica shares with the
// other replicas of a deployment: the Redis that carries rate-limit and
// brute-force counters. It owns the client and a health gate, so that a
// Redis outage is detected once, logged once, counted, and every consumer
// falls back together instead of each paying a timeout per request.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// DefaultTimeout bounds one Redis command, dial included. A limit
	// decision sits on the request path: a Redis that answers in more than
	// 100ms is treated as down and the local fallback decides instead.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultRetryInterval is how long the gate keeps Redis marked down
	// after a failure before one request tries it again: long enough that
	// a dead Redis costs one failed call per second, not one per request;
	// short enough that shared limits resume within a second of recovery.
	DefaultRetryInterval = time.Second
	// logEvery rate-limits the "Redis unavailable" log line: an outage at
	// thousands of requests per second logs once per interval, with the
	// count of failures in between.
	logEvery = 10 * time.Second
)

// Options configures OpenRedis.
type Options struct {
	// Timeout bounds each command; 0 means DefaultTimeout.
	Timeout time.Duration
	// RetryInterval is the back-off after a failure; 0 means DefaultRetryInterval.
	RetryInterval time.Duration
	// Logger receives the outage and recovery lines; nil discards them.
	Logger *slog.Logger
	// OnState is called with false when Redis is marked down and true when
	// it answers again (for a metric); nil is allowed.
	OnState func(up bool)
	// OnError is called for every failed command (for a metric); nil is allowed.
	OnError func()
}

// Redis is one Redis client and its health gate. It is safe for concurrent use.
type Redis struct {
	Client *redis.Client
	*Gate
	url string
}

// OpenRedis parses a redis:// or rediss:// URL and returns a client with
// short timeouts and no retries: a failed command falls back at once. It
// does not dial: the first command does, and a Redis that is down at start
// is handled like one that goes down later.
func OpenRedis(rawURL string, o Options) (*Redis, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis url: %w", err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	opts.DialTimeout = timeout
	opts.ReadTimeout = timeout
	opts.WriteTimeout = timeout
	opts.PoolTimeout = timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1   // no retries: the fallback is the retry
	opts.DialerRetries = 1 // go-redis dials 5 times by default: 400ms per call against a refusing Redis
	opts.DisableIdentity = true
	return &Redis{Client: redis.NewClient(opts), Gate: NewGate(o), url: rawURL}, nil
}

// URL returns the URL the client was opened with, for reload comparison.
func (r *Redis) URL() string { return r.url }

// Ping checks Redis once and reports the outcome to the gate.
func (r *Redis) Ping(ctx context.Context) error {
	err := r.Client.Ping(ctx).Err()
	r.Observe(err)
	return err
}

// Close closes the client's connections.
func (r *Redis) Close() error { return r.Client.Close() }

// Gate tracks whether a shared dependency is usable. Consumers ask Up
// before a call and report its outcome with Observe; after a failure the
// gate stays down for the retry interval, then lets calls try again.
type Gate struct {
	retry   time.Duration
	logger  *slog.Logger
	onState func(bool)
	onError func()

	downUntil atomic.Int64 // unix nanoseconds; 0 when up
	down      atomic.Bool

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int
}

// NewGate returns a gate that starts up.
func NewGate(o Options) *Gate {
	retry := o.RetryInterval
	if retry <= 0 {
		retry = DefaultRetryInterval
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Gate{retry: retry, logger: logger, onState: o.OnState, onError: o.OnError}
}

// Up reports whether callers should try the dependency now: it is up, or
// its retry interval has passed since the last failure.
func (g *Gate) Up() bool {
	until := g.downUntil.Load()
	return until == 0 || time.Now().UnixNano() >= until
}

// Observe records the outcome of a call. A caller whose own context ended
// must not report that as a failure of the dependency.
func (g *Gate) Observe(err error) {
	if err == nil {
		if g.down.Load() && g.down.CompareAndSwap(true, false) {
			g.downUntil.Store(0)
			g.logger.Info("redis available again: shared limits resume")
			if g.onState != nil {
				g.onState(true)
			}
		}
		return
	}
	if g.onError != nil {
		g.onError()
	}
	g.downUntil.Store(time.Now().Add(g.retry).UnixNano())
	first := g.down.CompareAndSwap(false, true)
	if first && g.onState != nil {
		g.onState(false)
	}
	g.mu.Lock()
	now := time.Now()
	if !first && now.Sub(g.lastLog) < logEvery {
		g.suppressed++
		g.mu.Unlock()
		return
	}
	n := g.suppressed
	g.suppressed, g.lastLog = 0, now
	g.mu.Unlock()
	g.logger.Warn("redis unavailable: deciding with the local fallback",
		"error", errString(err), "retry_in", g.retry.String(), "failures_since_last_log", n)
}

// errString keeps the log line short and free of the URL's password.
func errString(err error) string {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}
