// Package config is Bulwark's typed configuration: Load reads one YAML file
// strictly (unknown keys are errors), expands ${ENV} references, applies
// defaults and runs Validate, which reports every problem at once with the
// file and line it comes from. A loaded Config is plain data and is never
// mutated afterwards; a reload loads a new one.
//
// Every default below is named and carries the reason it was chosen; the
// reference for users is docs/configuration.md.
package config

import "time"

// Config is the whole configuration file.
type Config struct {
	Listeners  []Listener `yaml:"listeners"`
	Admin      Admin      `yaml:"admin"`
	Limits     Limits     `yaml:"limits"`
	Store      Store      `yaml:"store"`
	Cluster    Cluster    `yaml:"cluster"`
	Audit      Audit      `yaml:"audit"`
	Log        Log        `yaml:"log"`
	RequestID  RequestID  `yaml:"request_id"`
	Forwarding Forwarding `yaml:"forwarding"`
	// Identity are the named authentication providers APIs refer to.
	Identity []IdentityProvider `yaml:"identity"`
	APIs     []API              `yaml:"apis"`
	// Inventory is the living API inventory; Detect the behavioural detectors.
	Inventory Inventory `yaml:"inventory"`
	Detect    Detect    `yaml:"detect"`
	// Privacy is how personal data is pseudonymised.
	Privacy Privacy `yaml:"privacy"`

	// File is the absolute path the config was loaded from ("" for data).
	File string `yaml:"-"`
	// Warnings are problems that do not stop the config from loading
	// (for example a plain-HTTP listener); they are logged at start.
	Warnings []string `yaml:"-"`

	pos positions
}

// Listener is one address the gateway accepts client connections on.
type Listener struct {
	Addr string `yaml:"addr"`
	TLS  *TLS   `yaml:"tls"`
	// Insecure allows a plain-HTTP listener. It must be set explicitly and
	// is logged as a warning at every start.
	Insecure bool `yaml:"insecure"`
	// HSTS adds Strict-Transport-Security to every response on a TLS listener.
	HSTS *HSTS `yaml:"hsts"`
}

// TLS is the server side of a TLS listener.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	MinVersion   string `yaml:"min_version"`    // "1.2" (default) or "1.3"
	ClientCAFile string `yaml:"client_ca_file"` // PEM bundle of CAs for client certificates
	ClientAuth   string `yaml:"client_auth"`    // none (default) | optional | require
}

// HSTS is the Strict-Transport-Security policy.
type HSTS struct {
	MaxAge            Duration `yaml:"max_age"`
	IncludeSubdomains bool     `yaml:"include_subdomains"`
	Preload           bool     `yaml:"preload"`
}

// Admin is the admin listener: metrics, health, and (later) the admin API
// and dashboard.
type Admin struct {
	Addr  string `yaml:"addr"`
	Token string `yaml:"token"`
	// Disabled turns the admin listener off entirely.
	Disabled bool `yaml:"disabled"`
}

// Limits are the transport limits of every client listener.
type Limits struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	ShutdownTimeout   Duration `yaml:"shutdown_timeout"`
	MaxHeaderBytes    ByteSize `yaml:"max_header_bytes"`
	MaxBodyBytes      ByteSize `yaml:"max_body_bytes"`
	MaxConnsPerIP     int      `yaml:"max_conns_per_ip"`
	MaxInFlight       int      `yaml:"max_in_flight"`
}

// Store is where inventory and findings are kept.
type Store struct {
	URL string `yaml:"url"`
}

// Cluster names the shared services of a multi-node deployment.
type Cluster struct {
	RedisURL string `yaml:"redis_url"`
	NATSURL  string `yaml:"nats_url"`
	// RedisTimeout bounds one Redis command; beyond it the local fallback
	// decides. Default 100ms.
	RedisTimeout Duration `yaml:"redis_timeout"`
	// NATSStream and NATSSubject name the JetStream stream and subject of
	// exchange events; NATSDurable the collector's durable consumer. Set
	// them when several deployments share one NATS.
	NATSStream  string `yaml:"nats_stream"`
	NATSSubject string `yaml:"nats_subject"`
	NATSDurable string `yaml:"nats_durable"`
	// NATSCoolDownSubject is the core NATS subject on which the collector
	// sends cool-downs to the gateways (detect.mode enforce). It must
	// differ from NATSSubject, which the JetStream stream captures.
	// Default bulwark.cooldowns.
	NATSCoolDownSubject string `yaml:"nats_cooldown_subject"`
	// RedisFallback is what limits do while Redis is unreachable: local
	// (per-replica counters, the default), open (allow) or closed (refuse
	// with 429).
	RedisFallback string `yaml:"redis_fallback"`
}

// Audit is the tamper-evident exchange log.
type Audit struct {
	// Path of the JSON-lines file; "-" writes to stdout; "" disables it.
	Path string `yaml:"path"`
	// Sync fsyncs after every flush (slower; survives power loss).
	Sync bool `yaml:"sync"`
	// QueueSize bounds the records waiting to be written; when full,
	// requests wait rather than lose a record.
	QueueSize int `yaml:"queue_size"`
	// Disabled turns the audit log off.
	Disabled bool `yaml:"disabled"`
}

// Log is the gateway's own operational log (not the audit log).
type Log struct {
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
	Format string `yaml:"format"` // json (default) | text
}

// RequestID controls the request id returned to clients and sent upstream.
type RequestID struct {
	Header string `yaml:"header"`
	// AcceptIncoming keeps a well-formed id sent by the client (for
	// tracing across a chain of proxies); a malformed one is replaced.
	AcceptIncoming *bool `yaml:"accept_incoming"`
}

// Forwarding controls the headers rebuilt for the upstream.
type Forwarding struct {
	// StripHeaders are removed from every client request before it is
	// forwarded, in addition to the forwarding headers Bulwark always
	// rebuilds. List here every header your upstreams trust for identity.
	StripHeaders []string `yaml:"strip_headers"`
	// TrustedProxies are the CIDRs (or addresses) of load balancers whose
	// ClientAddressHeader is believed. From any other peer the TCP address
	// is the client, so a header cannot dodge a limit.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ClientAddressHeader is X-Forwarded-For (default) or Forwarded.
	ClientAddressHeader string `yaml:"client_address_header"`
}

// API is one protected API: how requests are matched to it, where they go,
// and which protections apply.
type API struct {
	Name     string   `yaml:"name"`
	Match    Match    `yaml:"match"`
	Upstream Upstream `yaml:"upstream"`
	// Spec is an OpenAPI 3.0/3.1 (or Swagger 2.0) file describing the API.
	Spec string `yaml:"spec"`
	Mode string `yaml:"mode"` // enforce (default) | monitor

	// Authenticate lists the identity providers any of which may
	// authenticate a request; empty means the API is not authenticated.
	Authenticate []string `yaml:"authenticate"`
	// Anonymous lists operations ("GET /health") that need no credential,
	// in addition to those the spec marks with security: [].
	Anonymous []string `yaml:"anonymous"`
	// SecuritySchemes maps the spec's security scheme names to provider
	// names; by default a scheme is served by the authenticate providers of
	// a matching kind.
	SecuritySchemes map[string][]string `yaml:"security_schemes"`
	// FAPI are the token-binding checks (RFC 8705, RFC 9449).
	FAPI *FAPI `yaml:"fapi"`
	// IdentityHeaders carry the verified identity to the upstream.
	IdentityHeaders *IdentityHeaders `yaml:"identity_headers"`

	// Validate holds exchanges to the spec.
	Validate *Validate `yaml:"validate"`
	// Data is the sensitive-data policy (detect, mask, block).
	Data *Data `yaml:"data"`
	// WAF is the OWASP Core Rule Set inspection.
	WAF *WAF `yaml:"waf"`

	// Objects are object-level authorization rules (BOLA) in CEL.
	Objects []ObjectRule `yaml:"objects"`
	// Rules are custom business-logic checks in CEL.
	Rules []BusinessRule `yaml:"rules"`
	// Authorize is function-level authorization (BFLA), tenant isolation
	// and the authorization stage's mode.
	Authorize *Authorize `yaml:"authorize"`

	// RateLimits are the API's rate limits and quotas.
	RateLimits []RateLimit `yaml:"rate_limits"`
	// Throttle is the API's concurrency limit and load shedding.
	Throttle *Throttle `yaml:"throttle"`
	// BruteForce protects the API's login operation.
	BruteForce *BruteForce `yaml:"brute_force"`
}

// Match selects the requests of an API.
type Match struct {
	// Hosts are exact host names or "*.suffix" wildcards; empty matches any host.
	Hosts []string `yaml:"hosts"`
	// PathPrefix matches whole path segments ("/api" matches "/api/x", not "/apix").
	PathPrefix string `yaml:"path_prefix"`
}

// Upstream is where an API's requests are sent.
type Upstream struct {
	URL                   string          `yaml:"url"`
	StripPrefix           bool            `yaml:"strip_prefix"`
	PreserveHost          bool            `yaml:"preserve_host"`
	DialTimeout           Duration        `yaml:"dial_timeout"`
	ResponseHeaderTimeout Duration        `yaml:"response_header_timeout"`
	IdleConnTimeout       Duration        `yaml:"idle_conn_timeout"`
	MaxIdleConnsPerHost   int             `yaml:"max_idle_conns_per_host"`
	MaxConnsPerHost       int             `yaml:"max_conns_per_host"`
	Retries               *int            `yaml:"retries"`
	RetryBackoff          Duration        `yaml:"retry_backoff"`
	TLS                   *UpstreamTLS    `yaml:"tls"`
	CircuitBreaker        *CircuitBreaker `yaml:"circuit_breaker"`
}

// UpstreamTLS is the client side of TLS to the upstream (and mTLS when a
// client certificate is given).
type UpstreamTLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	MinVersion         string `yaml:"min_version"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// CircuitBreaker opens after consecutive failures and fails fast for a
// cool-down, then lets one probe request through.
type CircuitBreaker struct {
	Disabled bool     `yaml:"disabled"`
	Failures int      `yaml:"failures"`
	Cooldown Duration `yaml:"cooldown"`
}

// Defaults, each with the reason for its value.
const (
	// DefaultReadHeaderTimeout cuts slowloris clients; 5s is ample for any
	// real client on a real network to send its headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds the whole request including the body, so a
	// client trickling a body (slow POST) cannot hold a connection forever.
	DefaultReadTimeout = 60 * time.Second
	// DefaultIdleTimeout closes idle keep-alive connections; matches common
	// load balancer idle timeouts.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultShutdownTimeout is how long a graceful drain waits for
	// in-flight requests on SIGTERM.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultMaxHeaderBytes: 16 KiB holds large bearer tokens and cookies;
	// beyond it a request is answered 431.
	DefaultMaxHeaderBytes = 16 << 10
	// DefaultMaxBodyBytes: 1 MiB covers JSON APIs; larger bodies get 413.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxConnsPerIP caps one address's share of connections.
	DefaultMaxConnsPerIP = 256
	// DefaultMaxInFlight caps concurrent requests; beyond it 503 + Retry-After.
	DefaultMaxInFlight = 10000
	// DefaultAdminAddr keeps the admin listener on loopback.
	DefaultAdminAddr = "127.0.0.1:9901"
	// DefaultStoreURL is the embedded single-node store.
	DefaultStoreURL = "sqlite://bulwark.db"
	// DefaultAuditQueue: 64k records is about a second of peak traffic on a
	// large node; beyond it requests wait for the disk.
	DefaultAuditQueue = 65536
	// DefaultRequestIDHeader is the de-facto standard header.
	DefaultRequestIDHeader = "X-Request-Id"

	// DefaultDialTimeout fails fast on an unreachable upstream.
	DefaultDialTimeout = 5 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for an upstream's headers.
	DefaultResponseHeaderTimeout = 30 * time.Second
	// DefaultIdleConnTimeout keeps upstream connections warm between bursts.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultMaxIdleConnsPerHost sizes the keep-alive pool for load; Go's
	// own default of 2 forces a new connection per request under load.
	DefaultMaxIdleConnsPerHost = 512
	// DefaultRetries is one retry of an idempotent request on a connection error.
	DefaultRetries = 1
	// DefaultRetryBackoff spaces retries.
	DefaultRetryBackoff = 25 * time.Millisecond
	// DefaultBreakerFailures consecutive failures open the breaker.
	DefaultBreakerFailures = 5
	// DefaultBreakerCooldown is how long an open breaker fails fast.
	DefaultBreakerCooldown = 10 * time.Second
	// MinAdminTokenLen keeps admin tokens out of guessing range.
	MinAdminTokenLen = 16
	// MaxConfigBytes bounds the config file read.
	MaxConfigBytes = 4 << 20
)
