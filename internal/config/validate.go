package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func (c *Config) applyDefaults() {
	defer c.identityDefaults()
	defer c.inspectDefaults()
	defer c.abuseDefaults()
	defer c.inventoryDefaults()
	l := &c.Limits
	setDur(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&l.ReadTimeout, DefaultReadTimeout)
	setDur(&l.IdleTimeout, DefaultIdleTimeout)
	setDur(&l.ShutdownTimeout, DefaultShutdownTimeout)
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxConnsPerIP == 0 {
		l.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if l.MaxInFlight == 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if c.Admin.Addr == "" {
		c.Admin.Addr = DefaultAdminAddr
	}
	if c.Store.URL == "" {
		c.Store.URL = DefaultStoreURL
	}
	if c.Audit.QueueSize == 0 {
		c.Audit.QueueSize = DefaultAuditQueue
	}
	if c.Audit.Path == "" && !c.Audit.Disabled {
		c.Audit.Path = "bulwark-audit.log"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.RequestID.Header == "" {
		c.RequestID.Header = DefaultRequestIDHeader
	}
	if c.RequestID.AcceptIncoming == nil {
		t := true
		c.RequestID.AcceptIncoming = &t
	}
	for i := range c.Listeners {
		if t := c.Listeners[i].TLS; t != nil {
			if t.MinVersion == "" {
				t.MinVersion = "1.2"
			}
			if t.ClientAuth == "" {
				t.ClientAuth = "none"
			}
		}
	}
	for i := range c.APIs {
		a := &c.APIs[i]
		if a.Mode == "" {
			a.Mode = "enforce"
		}
		if a.Match.PathPrefix == "" {
			a.Match.PathPrefix = "/"
		}
		u := &a.Upstream
		setDur(&u.DialTimeout, DefaultDialTimeout)
		setDur(&u.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
		setDur(&u.IdleConnTimeout, DefaultIdleConnTimeout)
		setDur(&u.RetryBackoff, DefaultRetryBackoff)
		if u.MaxIdleConnsPerHost == 0 {
			u.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
		}
		if u.Retries == nil {
			r := DefaultRetries
			u.Retries = &r
		}
		if u.CircuitBreaker == nil {
			u.CircuitBreaker = &CircuitBreaker{}
		}
		if u.CircuitBreaker.Failures == 0 {
			u.CircuitBreaker.Failures = DefaultBreakerFailures
		}
		setDur(&u.CircuitBreaker.Cooldown, DefaultBreakerCooldown)
		if u.TLS != nil && u.TLS.MinVersion == "" {
			u.TLS.MinVersion = "1.2"
		}
	}
}

func setDur(d *Duration, def interface{ Nanoseconds() int64 }) {
	if *d == 0 {
		*d = Duration(def.Nanoseconds())
	}
}

// resolvePaths makes file paths relative to the config file's directory.
func (c *Config) resolvePaths() {
	dir := "."
	if c.File != "" {
		dir = filepath.Dir(c.File)
	}
	abs := func(p *string) {
		if *p != "" && *p != "-" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.Listeners {
		if t := c.Listeners[i].TLS; t != nil {
			abs(&t.CertFile)
			abs(&t.KeyFile)
			abs(&t.ClientCAFile)
		}
	}
	abs(&c.Audit.Path)
	abs(&c.Detect.FindingsFile)
	if strings.HasPrefix(c.Store.URL, "sqlite://") {
		// A relative SQLite file lives beside the config, like every other file.
		f := strings.TrimPrefix(c.Store.URL, "sqlite://")
		if f != ":memory:" {
			abs(&f)
			c.Store.URL = "sqlite://" + f
		}
	}
	for i := range c.Identity {
		if j := c.Identity[i].JWT; j != nil {
			abs(&j.JWKSFile)
			abs(&j.CAFile)
		}
		if in := c.Identity[i].Introspection; in != nil {
			abs(&in.CAFile)
		}
	}
	for i := range c.APIs {
		abs(&c.APIs[i].Spec)
		if t := c.APIs[i].Upstream.TLS; t != nil {
			abs(&t.CAFile)
			abs(&t.CertFile)
			abs(&t.KeyFile)
		}
	}
}

// validate checks the whole config and returns every problem.
func (c *Config) validate() []fieldErr {
	var errs []fieldErr
	add := func(path, format string, args ...any) {
		errs = append(errs, fieldErr{path, fmt.Sprintf(format, args...)})
	}
	c.Warnings = nil
	warn := func(path, format string, args ...any) {
		c.Warnings = append(c.Warnings, c.errAt(path, fmt.Sprintf(format, args...)).Error())
	}

	if len(c.Listeners) == 0 {
		add("listeners", "at least one listener is required")
	}
	addrs := map[string]string{}
	for i, ln := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if err := checkAddr(ln.Addr); err != nil {
			add(p+".addr", "%v", err)
		} else if prev, dup := addrs[ln.Addr]; dup && !anyPort(ln.Addr) {
			add(p+".addr", "address %s is already used by %s", ln.Addr, prev)
		} else {
			addrs[ln.Addr] = p
		}
		switch {
		case ln.TLS == nil && !ln.Insecure:
			add(p, "a listener needs tls (cert_file, key_file), or insecure: true for plain HTTP")
		case ln.TLS != nil && ln.Insecure:
			add(p+".insecure", "insecure: true cannot be combined with tls")
		case ln.Insecure:
			warn(p+".insecure", "plain-HTTP listener on %s: traffic and credentials are not encrypted", ln.Addr)
		}
		if ln.HSTS != nil && ln.TLS == nil {
			add(p+".hsts", "hsts only applies to a TLS listener")
		}
		if ln.HSTS != nil && ln.HSTS.MaxAge < 0 {
			add(p+".hsts.max_age", "must not be negative")
		}
		if t := ln.TLS; t != nil {
			tp := p + ".tls"
			if t.CertFile == "" {
				add(tp+".cert_file", "required")
			} else {
				checkFile(add, tp+".cert_file", t.CertFile)
			}
			if t.KeyFile == "" {
				add(tp+".key_file", "required")
			} else {
				checkFile(add, tp+".key_file", t.KeyFile)
			}
			if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
				add(tp+".min_version", "must be \"1.2\" or \"1.3\" (older versions are not supported), got %q", clip(t.MinVersion))
			}
			switch t.ClientAuth {
			case "none":
			case "optional", "require":
				if t.ClientCAFile == "" {
					add(tp+".client_ca_file", "required when client_auth is %s", t.ClientAuth)
				}
			default:
				add(tp+".client_auth", "must be none, optional or require, got %q", clip(t.ClientAuth))
			}
			if t.ClientCAFile != "" {
				checkFile(add, tp+".client_ca_file", t.ClientCAFile)
			}
		}
	}

	if !c.Admin.Disabled {
		if err := checkAddr(c.Admin.Addr); err != nil {
			add("admin.addr", "%v", err)
		} else if _, dup := addrs[c.Admin.Addr]; dup && !anyPort(c.Admin.Addr) {
			add("admin.addr", "address %s is also a client listener", c.Admin.Addr)
		} else if !isLoopback(c.Admin.Addr) {
			warn("admin.addr", "admin listener %s is reachable beyond loopback; keep it on a private network", c.Admin.Addr)
		}
		if c.Admin.Token == "" {
			add("admin.token", "required: set a token of at least %d characters (for example token: \"${BULWARK_ADMIN_TOKEN}\"), or admin.disabled: true", MinAdminTokenLen)
		} else if len(c.Admin.Token) < MinAdminTokenLen {
			add("admin.token", "too short: at least %d characters", MinAdminTokenLen)
		}
	}

	l := c.Limits
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"read_header_timeout", l.ReadHeaderTimeout}, {"read_timeout", l.ReadTimeout},
		{"write_timeout", l.WriteTimeout}, {"idle_timeout", l.IdleTimeout}, {"shutdown_timeout", l.ShutdownTimeout},
	} {
		if d.v < 0 {
			add("limits."+d.key, "must not be negative")
		}
	}
	if l.MaxHeaderBytes < 1024 || l.MaxHeaderBytes > 1<<20 {
		add("limits.max_header_bytes", "must be between 1KiB and 1MiB, got %d", l.MaxHeaderBytes)
	}
	if l.MaxBodyBytes < 0 {
		add("limits.max_body_bytes", "must not be negative")
	}
	if l.MaxConnsPerIP < 0 {
		add("limits.max_conns_per_ip", "must not be negative")
	}
	if l.MaxInFlight < 0 {
		add("limits.max_in_flight", "must not be negative")
	}

	if u, err := url.Parse(c.Store.URL); err != nil || (u.Scheme != "sqlite" && u.Scheme != "postgres" && u.Scheme != "postgresql") {
		add("store.url", "must be sqlite://FILE or postgres://..., got %q", clip(redactURL(c.Store.URL)))
	}
	if c.Cluster.RedisURL != "" {
		if u, err := url.Parse(c.Cluster.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			add("cluster.redis_url", "must be redis://HOST:PORT or rediss://..., got %q", clip(redactURL(c.Cluster.RedisURL)))
		}
	}
	if c.Cluster.NATSURL != "" {
		if u, err := url.Parse(c.Cluster.NATSURL); err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			add("cluster.nats_url", "must be nats://HOST:PORT or tls://..., got %q", clip(redactURL(c.Cluster.NATSURL)))
		}
	}
	if c.Audit.QueueSize < 0 {
		add("audit.queue_size", "must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "must be debug, info, warn or error, got %q", clip(c.Log.Level))
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format", "must be json or text, got %q", clip(c.Log.Format))
	}
	if !validHeaderName(c.RequestID.Header) {
		add("request_id.header", "not a valid header name: %q", clip(c.RequestID.Header))
	}
	for i, h := range c.Forwarding.StripHeaders {
		if !validHeaderName(h) {
			add(fmt.Sprintf("forwarding.strip_headers[%d]", i), "not a valid header name: %q", clip(h))
		}
	}

	c.validateIdentity(add, warn)
	c.validateInspect(add)
	c.validateAuthz(add)
	c.validateAbuse(add)
	c.validateInventory(add)
	c.validatePrivacy(add, warn)

	if len(c.APIs) == 0 {
		add("apis", "at least one API is required")
	}
	names := map[string]string{}
	routes := map[string]string{}
	for i, a := range c.APIs {
		p := fmt.Sprintf("apis[%d]", i)
		checkName(add, p+".name", "API", a.Name, names)
		checkMode(add, p+".mode", a.Mode) // defaulted to enforce when empty
		pp := a.Match.PathPrefix
		if !strings.HasPrefix(pp, "/") || strings.ContainsAny(pp, "?#") || strings.Contains(pp, "//") {
			add(p+".match.path_prefix", "must be an absolute path such as /api/v1, got %q", clip(pp))
		}
		hosts := a.Match.Hosts
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		for j, h := range a.Match.Hosts {
			if !validHostPattern(h) {
				add(fmt.Sprintf("%s.match.hosts[%d]", p, j), "not a host name or *.wildcard: %q", clip(h))
			}
		}
		for _, h := range hosts {
			key := strings.ToLower(h) + " " + strings.TrimSuffix(pp, "/")
			if prev, dup := routes[key]; dup {
				add(p+".match", "same host %q and path_prefix %q as %s: requests could not be told apart", h, pp, prev)
			}
			routes[key] = p
		}
		c.validateUpstream(add, warn, p+".upstream", a.Upstream)
		if a.Spec != "" {
			checkFile(add, p+".spec", a.Spec)
		}
	}
	return errs
}

func (c *Config) validateUpstream(add, warn func(string, string, ...any), p string, u Upstream) {
	if u.URL == "" {
		add(p+".url", "required: where requests for this API are sent, e.g. http://127.0.0.1:9000")
		if _, ok := c.pos[p]; !ok {
			// the whole upstream block is missing; say so on the API.
			return
		}
	} else if pu, err := url.Parse(u.URL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.RawQuery != "" || pu.Fragment != "" || pu.User != nil {
		add(p+".url", "must be http://HOST[:PORT][/path] or https://..., without query or credentials, got %q", clip(redactURL(u.URL)))
	} else if pu.Scheme == "http" && u.TLS != nil {
		add(p+".tls", "tls is set but the upstream url is http://")
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"dial_timeout", u.DialTimeout}, {"response_header_timeout", u.ResponseHeaderTimeout}, {"idle_conn_timeout", u.IdleConnTimeout}, {"retry_backoff", u.RetryBackoff}} {
		if d.v < 0 {
			add(p+"."+d.key, "must not be negative")
		}
	}
	if u.MaxIdleConnsPerHost < 0 {
		add(p+".max_idle_conns_per_host", "must not be negative")
	}
	if u.MaxConnsPerHost < 0 {
		add(p+".max_conns_per_host", "must not be negative")
	}
	if u.Retries != nil && (*u.Retries < 0 || *u.Retries > 5) {
		add(p+".retries", "must be between 0 and 5")
	}
	if cb := u.CircuitBreaker; cb != nil {
		if cb.Failures < 1 || cb.Failures > 1000 {
			add(p+".circuit_breaker.failures", "must be between 1 and 1000")
		}
		if cb.Cooldown < 0 {
			add(p+".circuit_breaker.cooldown", "must not be negative")
		}
	}
	if t := u.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			add(p+".tls", "cert_file and key_file go together (client certificate for mTLS)")
		}
		for _, f := range []struct{ key, v string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
			if f.v != "" {
				checkFile(add, p+".tls."+f.key, f.v)
			}
		}
		if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
			add(p+".tls.min_version", "must be \"1.2\" or \"1.3\", got %q", clip(t.MinVersion))
		}
		if t.InsecureSkipVerify {
			warn(p+".tls.insecure_skip_verify", "upstream certificate is not verified: traffic can be intercepted")
		}
	}
}

// checkMode reports a mode that is neither enforce nor monitor; an empty
// mode (a protection inheriting the API's) is fine.
func checkMode(add func(string, string, ...any), path, m string) {
	if m != "" && m != "enforce" && m != "monitor" {
		add(path, "must be enforce or monitor, got %q", clip(m))
	}
}

// checkName checks the name of a listed item (an API, an identity
// provider) and that no earlier item of the same kind has it; seen maps
// names to the path of their first use.
func checkName(add func(string, string, ...any), path, kind, name string, seen map[string]string) {
	switch {
	case name == "":
		add(path, "required")
	case !validName(name):
		add(path, "must be letters, digits, '-', '_' or '.', at most 64 characters")
	default:
		if prev, dup := seen[name]; dup {
			add(path, "duplicate %s name %q (also %s)", kind, name, prev)
		}
		seen[name] = strings.TrimSuffix(path, ".name")
	}
}

func checkFile(add func(string, string, ...any), path, file string) {
	st, err := os.Stat(file)
	switch {
	case err != nil:
		add(path, "cannot read %s: %v", relToWD(file), unwrapPathErr(err))
	case st.IsDir():
		add(path, "%s is a directory, not a file", relToWD(file))
	}
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func checkAddr(addr string) error {
	if addr == "" {
		return fmt.Errorf("required, e.g. \":8443\" or \"127.0.0.1:8443\"")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: want HOST:PORT", clip(addr))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in %q", clip(addr))
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("listen host must be an IP address or localhost, got %q", clip(host))
		}
	}
	return nil
}

// anyPort reports whether addr asks the kernel for a free port (":0"), which
// never collides.
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validHostPattern(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	if hh, port, err := net.SplitHostPort(h); err == nil {
		if _, err := strconv.Atoi(port); err != nil {
			return false
		}
		h = hh
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// redactURL hides credentials in a URL echoed back in an error.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

func relToWD(file string) string {
	wd, err := os.Getwd()
	if err != nil {
		return file
	}
	rel, err := filepath.Rel(wd, file)
	if err != nil || strings.HasPrefix(rel, "..") {
		return file
	}
	return rel
}
