package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/ratelimit"
)

// RateLimit is one limit of an API: a GCRA rate with a burst, or a
// calendar quota, counted per key.
type RateLimit struct {
	// Name identifies the limit in RateLimit-Policy, the audit log and
	// metrics; default: the key ("ip", "identity", ...) or "limit-N" for
	// a CEL key, with "-N" added when the same name repeats.
	Name string `yaml:"name"`
	// Key is what is counted: ip, identity, api_key, operation, or a CEL
	// expression giving a string (for example request.headers['x-tenant']).
	Key string `yaml:"key"`
	// Rate is "<count>/<s|m|h|d>", such as 100/s.
	Rate string `yaml:"rate"`
	// Burst is how many requests are admitted at once after the key has
	// been idle; default: the rate's count.
	Burst int `yaml:"burst"`
	// Quota is "<count>/day" or "<count>/month" (UTC calendar windows), an
	// alternative to Rate.
	Quota string `yaml:"quota"`
	// Operation limits the limit to one operation ("POST /login"); empty:
	// every request of the API.
	Operation string `yaml:"operation"`
	// Mode is enforce (the API's mode by default) or monitor.
	Mode string `yaml:"mode"`
}

// Rate-limit keys that are not CEL expressions.
const (
	KeyIP        = "ip"
	KeyIdentity  = "identity"
	KeyAPIKey    = "api_key"
	KeyOperation = "operation"
)

// IsBuiltinKey reports whether k is one of the named keys rather than CEL.
func IsBuiltinKey(k string) bool {
	return k == KeyIP || k == KeyIdentity || k == KeyAPIKey || k == KeyOperation
}

// Throttle is the concurrency limit of an API, with a wait queue and an
// optional adaptive limit that backs off when upstream latency rises.
type Throttle struct {
	// MaxConcurrency is the ceiling of requests in flight to the upstream.
	MaxConcurrency int `yaml:"max_concurrency"`
	// Queue is how many requests may wait for a slot; beyond it, 503.
	Queue int `yaml:"queue"`
	// QueueTimeout is the longest wait for a slot; default 1s.
	QueueTimeout Duration `yaml:"queue_timeout"`
	// Adaptive lowers the limit below MaxConcurrency while the upstream
	// slows down, and raises it again when it recovers.
	Adaptive bool `yaml:"adaptive"`
	// MinConcurrency is the adaptive limit's floor.
	MinConcurrency int `yaml:"min_concurrency"`
	// TargetLatency is the upstream latency above which the adaptive limit
	// backs off; default: learned from the no-load latency.
	TargetLatency Duration `yaml:"target_latency"`
	// Mode is enforce (the API's mode by default) or monitor.
	Mode string `yaml:"mode"`
}

// BruteForce is the login protection of an API.
type BruteForce struct {
	// Operation is the login operation ("POST /login").
	Operation string `yaml:"operation"`
	// Username is a CEL expression giving the username of an attempt, such
	// as request.body.username. It is only ever logged as a hash.
	Username string `yaml:"username"`
	// MaxFailures per username within Window before the username is locked.
	MaxFailures int `yaml:"max_failures"`
	// MaxClientFailures per client address within Window before the
	// address is locked; default 4 × max_failures.
	MaxClientFailures int `yaml:"max_client_failures"`
	// Window is the counting window; default 15m.
	Window Duration `yaml:"window"`
	// Lockout is how long a lock lasts; default: window.
	Lockout Duration `yaml:"lockout"`
	// Delay is the progressive delay's base: the attempt after k failures
	// waits Delay × 2^(k-1); default 250ms; "0s" disables it.
	Delay *Duration `yaml:"delay"`
	// MaxDelay caps the progressive delay; default 2s.
	MaxDelay Duration `yaml:"max_delay"`
	// FailureStatuses are the response statuses that count as a failed
	// login; default 401 and 403.
	FailureStatuses []int `yaml:"failure_statuses"`
	// Failure is a CEL expression over the response that is true for a
	// failed login; it replaces failure_statuses.
	Failure string `yaml:"failure"`
	// MaxUsernamesPerClient: more distinct failing usernames from one
	// address within Window is credential stuffing; default 10.
	MaxUsernamesPerClient int `yaml:"max_usernames_per_client"`
	// MaxClientsPerUsername: one username failing from more distinct
	// addresses within Window is a distributed attack; default 10.
	MaxClientsPerUsername int `yaml:"max_clients_per_username"`
	// Mode is enforce (the API's mode by default) or monitor.
	Mode string `yaml:"mode"`
}

// Abuse-protection defaults, each with its reason.
const (
	// DefaultQueueTimeout: a request that waited a second for an upstream
	// slot is better answered 503 than left to time out at the client.
	DefaultQueueTimeout = time.Second
	// DefaultBruteForceMaxFailures: five attempts absorb typos; NIST SP
	// 800-63B allows up to 100, but a bank login is worth more caution.
	DefaultBruteForceMaxFailures = 5
	// DefaultBruteForceWindow: fifteen minutes, the common lockout window.
	DefaultBruteForceWindow = 15 * time.Minute
	// DefaultBruteForceDelay: 250ms after the first failure, doubling, is
	// unnoticeable to a person and halves a guessing script's pace each time.
	DefaultBruteForceDelay = 250 * time.Millisecond
	// DefaultBruteForceMaxDelay caps the delay so a held attempt does not
	// tie up a connection for long.
	DefaultBruteForceMaxDelay = 2 * time.Second
	// DefaultStuffingThreshold: ten distinct accounts failing from one
	// address (or one account from ten addresses) in a window is not a
	// person mistyping.
	DefaultStuffingThreshold = 10
	// DefaultRedisFallback decides with per-replica limits while Redis is
	// unreachable: limits stay in force, only less precise.
	DefaultRedisFallback = "local"
	// DefaultClientAddressHeader is the header read from trusted proxies.
	DefaultClientAddressHeader = "X-Forwarded-For"
)

func (c *Config) abuseDefaults() {
	if c.Cluster.RedisFallback == "" {
		c.Cluster.RedisFallback = DefaultRedisFallback
	}
	if c.Cluster.NATSStream == "" {
		c.Cluster.NATSStream = "BULWARK_EVENTS"
	}
	if c.Cluster.NATSSubject == "" {
		c.Cluster.NATSSubject = "bulwark.events"
	}
	if c.Cluster.NATSDurable == "" {
		c.Cluster.NATSDurable = "bulwark-collector"
	}
	if c.Cluster.NATSCoolDownSubject == "" {
		c.Cluster.NATSCoolDownSubject = "bulwark.cooldowns"
	}
	if c.Forwarding.ClientAddressHeader == "" {
		c.Forwarding.ClientAddressHeader = DefaultClientAddressHeader
	}
	for i := range c.APIs {
		a := &c.APIs[i]
		seen := map[string]int{}
		for j := range a.RateLimits {
			rl := &a.RateLimits[j]
			if rl.Name == "" {
				rl.Name = rl.Key
				if !IsBuiltinKey(rl.Key) {
					rl.Name = fmt.Sprintf("limit-%d", j+1)
				}
				if n := seen[rl.Name]; n > 0 {
					rl.Name = fmt.Sprintf("%s-%d", rl.Name, j+1)
				}
			}
			seen[rl.Name]++
			if rl.Burst == 0 && rl.Rate != "" {
				if n, _, err := ratelimit.ParseRate(rl.Rate); err == nil {
					rl.Burst = n
				}
			}
		}
		if t := a.Throttle; t != nil {
			setDur(&t.QueueTimeout, DefaultQueueTimeout)
		}
		if b := a.BruteForce; b != nil {
			if b.MaxFailures == 0 {
				b.MaxFailures = DefaultBruteForceMaxFailures
			}
			if b.MaxClientFailures == 0 && b.MaxFailures > 0 {
				b.MaxClientFailures = 4 * b.MaxFailures
			}
			setDur(&b.Window, DefaultBruteForceWindow)
			if b.Lockout == 0 && b.Window > 0 {
				b.Lockout = b.Window
			}
			if b.Delay == nil {
				d := Duration(DefaultBruteForceDelay)
				b.Delay = &d
			}
			setDur(&b.MaxDelay, DefaultBruteForceMaxDelay)
			if len(b.FailureStatuses) == 0 && b.Failure == "" {
				b.FailureStatuses = []int{401, 403}
			}
			if b.MaxUsernamesPerClient == 0 {
				b.MaxUsernamesPerClient = DefaultStuffingThreshold
			}
			if b.MaxClientsPerUsername == 0 {
				b.MaxClientsPerUsername = DefaultStuffingThreshold
			}
		}
	}
}

func (c *Config) validateAbuse(add func(string, string, ...any)) {
	oneOf(add, "cluster.redis_fallback", c.Cluster.RedisFallback, "local", "open", "closed")
	for _, n := range []struct{ key, v string }{{"cluster.nats_stream", c.Cluster.NATSStream}, {"cluster.nats_durable", c.Cluster.NATSDurable}} {
		if !validName(n.v) || strings.Contains(n.v, ".") {
			add(n.key, "must be letters, digits, '-' or '_', got %q", clip(n.v))
		}
	}
	if s := c.Cluster.NATSSubject; s == "" || strings.ContainsAny(s, " *>") {
		add("cluster.nats_subject", "must be a plain NATS subject such as bulwark.events, got %q", clip(s))
	}
	switch s := c.Cluster.NATSCoolDownSubject; {
	case s == "" || strings.ContainsAny(s, " \t\r\n*>") || slices.Contains(strings.Split(s, "."), ""):
		add("cluster.nats_cooldown_subject", "must be a plain NATS subject such as bulwark.cooldowns, got %q", clip(s))
	case s == c.Cluster.NATSSubject:
		// The stream captures exactly nats_subject (a plain subject, no
		// wildcard): any other subject stays out of JetStream.
		add("cluster.nats_cooldown_subject", "must differ from cluster.nats_subject %q: the JetStream stream would store the cool-downs and the collector read them as events", clip(s))
	}
	if c.Cluster.RedisTimeout < 0 {
		add("cluster.redis_timeout", "must not be negative")
	}
	for i, s := range c.Forwarding.TrustedProxies {
		if _, err := ParsePrefix(s); err != nil {
			add(fmt.Sprintf("forwarding.trusted_proxies[%d]", i), "%v", err)
		}
	}
	switch strings.ToLower(c.Forwarding.ClientAddressHeader) {
	case "x-forwarded-for", "forwarded":
	default:
		add("forwarding.client_address_header", "must be X-Forwarded-For or Forwarded, got %q", clip(c.Forwarding.ClientAddressHeader))
	}
	for i, a := range c.APIs {
		p := fmt.Sprintf("apis[%d]", i)
		names := map[string]string{}
		for j, rl := range a.RateLimits {
			rp := fmt.Sprintf("%s.rate_limits[%d]", p, j)
			checkName(add, rp+".name", "rate limit", rl.Name, names)
			if strings.TrimSpace(rl.Key) == "" {
				add(rp+".key", "required: ip, identity, api_key, operation, or a CEL expression giving a string")
			} else if (rl.Key == KeyIdentity || rl.Key == KeyAPIKey) && len(a.Authenticate) == 0 {
				add(rp+".key", "key %s counts authenticated callers: set authenticate on the API", rl.Key)
			}
			switch {
			case rl.Rate == "" && rl.Quota == "":
				add(rp, "needs rate (such as 100/s) or quota (such as 10000/day)")
			case rl.Rate != "" && rl.Quota != "":
				add(rp, "rate and quota are separate limits: write two entries")
			case rl.Rate != "":
				n, _, err := ratelimit.ParseRate(rl.Rate)
				if err != nil {
					add(rp+".rate", "%v", err)
				} else if rl.Burst < 0 {
					add(rp+".burst", "must not be negative")
				} else if rl.Burst > 100*n && rl.Burst > 1_000_000 {
					add(rp+".burst", "burst %d is out of proportion to the rate %s", rl.Burst, rl.Rate)
				}
			default:
				if _, err := ratelimit.ParseQuota(rl.Quota); err != nil {
					add(rp+".quota", "%v", err)
				}
				if rl.Burst != 0 {
					add(rp+".burst", "a quota has no burst")
				}
			}
			if rl.Operation != "" && !validOperationKey(rl.Operation) {
				add(rp+".operation", "must be an operation such as \"POST /login\", got %q", clip(rl.Operation))
			}
			checkMode(add, rp+".mode", rl.Mode)
		}
		if t := a.Throttle; t != nil {
			tp := p + ".throttle"
			if t.MaxConcurrency <= 0 {
				add(tp+".max_concurrency", "required: the most requests in flight to the upstream, at least 1")
			}
			if t.Queue < 0 {
				add(tp+".queue", "must not be negative")
			}
			if t.QueueTimeout < 0 {
				add(tp+".queue_timeout", "must not be negative")
			}
			if !t.Adaptive && (t.MinConcurrency != 0 || t.TargetLatency != 0) {
				add(tp, "min_concurrency and target_latency need adaptive: true")
			}
			if t.MinConcurrency < 0 || (t.MaxConcurrency > 0 && t.MinConcurrency > t.MaxConcurrency) {
				add(tp+".min_concurrency", "must be between 0 and max_concurrency")
			}
			if t.TargetLatency < 0 {
				add(tp+".target_latency", "must not be negative")
			}
			checkMode(add, tp+".mode", t.Mode)
		}
		if b := a.BruteForce; b != nil {
			bp := p + ".brute_force"
			if !validOperationKey(b.Operation) {
				add(bp+".operation", "required: the login operation, such as \"POST /login\"; got %q", clip(b.Operation))
			}
			if strings.TrimSpace(b.Username) == "" {
				add(bp+".username", "required: a CEL expression giving the username, such as request.body.username")
			}
			if b.MaxFailures < 1 {
				add(bp+".max_failures", "must be at least 1")
			}
			if b.MaxClientFailures < 1 && b.MaxFailures >= 1 {
				add(bp+".max_client_failures", "must be at least 1")
			}
			if b.Window <= 0 {
				add(bp+".window", "must be positive")
			}
			if b.Lockout <= 0 && b.Window > 0 {
				add(bp+".lockout", "must be positive")
			}
			if b.Delay != nil && *b.Delay < 0 {
				add(bp+".delay", "must not be negative")
			}
			if b.MaxDelay < 0 {
				add(bp+".max_delay", "must not be negative")
			}
			for k, s := range b.FailureStatuses {
				if s < 100 || s > 599 {
					add(fmt.Sprintf("%s.failure_statuses[%d]", bp, k), "must be an HTTP status between 100 and 599, got %d", s)
				}
			}
			if b.Failure != "" && len(b.FailureStatuses) > 0 {
				add(bp+".failure", "failure and failure_statuses are alternatives: keep one")
			}
			if b.MaxUsernamesPerClient < 1 {
				add(bp+".max_usernames_per_client", "must be at least 1")
			}
			if b.MaxClientsPerUsername < 1 {
				add(bp+".max_clients_per_username", "must be at least 1")
			}
			checkMode(add, bp+".mode", b.Mode)
		}
	}
}

// ParsePrefix parses a trusted-proxy entry: a CIDR ("10.0.0.0/8") or a
// single address ("192.0.2.10", meaning /32 or /128). IPv4-mapped IPv6
// forms are unmapped so they match the IPv4 peers Go reports.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR or an IP address: %q", clip(s))
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a CIDR or an IP address: %q", clip(s))
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
