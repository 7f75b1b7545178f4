// Package upstream sends an API's requests to its upstream: a tuned
// transport (keep-alive pool, timeouts, TLS and mTLS), retries for
// idempotent requests on connection errors, and a circuit breaker per
// upstream. It forwards through httputil.ReverseProxy with Rewrite, which
// drops the client's X-Forwarded-* headers; Bulwark rebuilds them and strips
// every other header that an upstream might trust for a client's address or
// identity.
package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// AlwaysStripped are request headers removed before forwarding, whatever the
// config says: they carry a client address, a path override or a proxy
// chain that only Bulwark may assert. X-Forwarded-For/-Host/-Proto are
// removed by httputil.ReverseProxy itself when Rewrite is used, and then
// rebuilt here.
var AlwaysStripped = []string{
	"Forwarded",
	"X-Forwarded-Port",
	"X-Forwarded-Prefix",
	"X-Forwarded-Server",
	"X-Forwarded-Ssl",
	"X-Original-Forwarded-For",
	"X-Real-Ip",
	"X-Client-Ip",
	"Client-Ip",
	"True-Client-Ip",
	"Cf-Connecting-Ip",
	"Fastly-Client-Ip",
	"X-Cluster-Client-Ip",
	"X-Proxyuser-Ip",
	"X-Original-Url",
	"X-Rewrite-Url",
	"X-Original-Uri",
	"X-Http-Method-Override",
	"X-Http-Method",
	"X-Method-Override",
}

// ErrCircuitOpen is returned when the upstream's breaker fails fast.
var ErrCircuitOpen = errors.New("upstream circuit breaker open")

// Observer receives upstream events for metrics. Implementations must be
// safe for concurrent use.
type Observer interface {
	UpstreamRoundTrip(api string, d time.Duration, err error)
	UpstreamRetry(api string)
	BreakerState(api string, open bool)
}

// Options are the per-snapshot settings of a proxy that are not part of
// the upstream block (they come from the top of the config).
type Options struct {
	API             string
	RequestIDHeader string
	StripHeaders    []string // from forwarding.strip_headers
	PathPrefix      string   // the API's match.path_prefix, for strip_prefix
	// IdentityHeaders, when set, carry the verified identity upstream;
	// the same headers are always stripped from the client's request.
	IdentityHeaders *config.IdentityHeaders
	Logger          *slog.Logger
	Observer        Observer
	// ErrorHandler renders an upstream failure to the client; the gateway
	// supplies one that writes problem+json and records the decision.
	ErrorHandler func(http.ResponseWriter, *http.Request, error)
	// ModifyResponse runs the response stages; nil on the pass-through path.
	ModifyResponse func(*http.Response) error
}

// Proxy forwards one API's requests to its upstream.
type Proxy struct {
	target    *url.URL
	cfg       config.Upstream
	opts      Options
	transport *http.Transport
	breaker   *gobreaker.CircuitBreaker[*http.Response]
	rp        *httputil.ReverseProxy
	strip     []string
}

// New builds a proxy for one upstream. It reads the TLS files named in cfg.
func New(cfg config.Upstream, opts Options) (*Proxy, error) {
	target, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream url: %w", err)
	}
	tr, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, cfg: cfg, opts: opts, transport: tr}
	p.strip = append(append([]string{}, AlwaysStripped...), opts.StripHeaders...)
	if ih := opts.IdentityHeaders; ih != nil {
		for _, h := range []string{ih.Subject, ih.Scopes, ih.Roles, ih.Tenant, ih.Provider} {
			if h != "" {
				p.strip = append(p.strip, h)
			}
		}
	}
	if cb := cfg.CircuitBreaker; cb != nil && !cb.Disabled {
		failures := uint32(cb.Failures)
		p.breaker = gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{
			Name:        opts.API,
			MaxRequests: 1,
			Timeout:     cb.Cooldown.D(),
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
			IsExcluded: func(err error) bool {
				// A client that went away says nothing about the upstream.
				return errors.Is(err, context.Canceled)
			},
			OnStateChange: func(name string, from, to gobreaker.State) {
				if opts.Logger != nil {
					opts.Logger.Warn("upstream circuit breaker", "api", name, "from", from.String(), "to", to.String(), "upstream", target.Redacted())
				}
				if opts.Observer != nil {
					opts.Observer.BreakerState(name, to == gobreaker.StateOpen)
				}
			},
		})
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p,
		ErrorHandler:   opts.ErrorHandler,
		ModifyResponse: opts.ModifyResponse,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(loggerOr(opts.Logger).Handler(), slog.LevelWarn),
	}
	return p, nil
}

// ServeHTTP forwards r to the upstream.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.rp.ServeHTTP(w, r) }

// URL returns the upstream URL with any credentials redacted.
func (p *Proxy) URL() string { return p.target.Redacted() }

// Config returns the upstream block the proxy was built from, so a reload
// can keep a proxy (its warm connections and breaker state) when its
// config did not change.
func (p *Proxy) Config() config.Upstream { return p.cfg }

// Options returns the options the proxy was built with.
func (p *Proxy) Options() Options { return p.opts }

// Close releases idle upstream connections.
func (p *Proxy) Close() { p.transport.CloseIdleConnections() }

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	if p.cfg.StripPrefix && p.opts.PathPrefix != "/" {
		prefix := strings.TrimSuffix(p.opts.PathPrefix, "/")
		pr.Out.URL.Path = ensureSlash(strings.TrimPrefix(pr.Out.URL.Path, prefix))
		if pr.Out.URL.RawPath != "" {
			pr.Out.URL.RawPath = ensureSlash(strings.TrimPrefix(pr.Out.URL.RawPath, prefix))
		}
	}
	pr.SetURL(p.target)
	if p.cfg.PreserveHost {
		pr.Out.Host = pr.In.Host
	}
	h := pr.Out.Header
	for _, name := range p.strip {
		h.Del(name)
	}
	pr.SetXForwarded()
	x := pipeline.FromContext(pr.In.Context())
	client := ""
	if x != nil && x.ViaProxy {
		// The peer is a trusted proxy: the upstream learns the client it
		// reported, then the proxy, as one more proxy in the chain would
		// have written it. Entries the client could have forged are gone.
		client = x.ClientAddr.String()
		h.Set("X-Forwarded-For", client+", "+h.Get("X-Forwarded-For"))
	}
	h.Set("Forwarded", forwarded(pr.In, client))
	if x != nil {
		if p.opts.RequestIDHeader != "" {
			h.Set(p.opts.RequestIDHeader, x.RequestID)
		}
		if ih := p.opts.IdentityHeaders; ih != nil && x.Identity != nil {
			setIdentityHeaders(h, ih, x.Identity)
		}
	}
}

// setIdentityHeaders writes the verified identity. Values come from a
// verified token, but are still cleaned of control characters so a claim
// cannot split a header.
func setIdentityHeaders(h http.Header, ih *config.IdentityHeaders, id *identity.Identity) {
	set := func(name, v string) {
		if name != "" && v != "" {
			h.Set(name, headerSafe(v))
		}
	}
	set(ih.Subject, id.Subject)
	set(ih.Scopes, strings.Join(id.Scopes, " "))
	set(ih.Roles, strings.Join(id.Roles, ","))
	set(ih.Tenant, id.Tenant)
	set(ih.Provider, id.Provider)
}

// maxIdentityHeaderBytes bounds one identity header value.
const maxIdentityHeaderBytes = 4096

func headerSafe(v string) string {
	if len(v) > maxIdentityHeaderBytes {
		v = v[:maxIdentityHeaderBytes]
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			b := []byte(v)
			for j := range b {
				if b[j] < 0x20 && b[j] != '\t' || b[j] == 0x7f {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return v
}

func ensureSlash(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

// forwarded builds an RFC 7239 Forwarded header from the connection, or
// from client when a trusted proxy reported the client's address.
func forwarded(r *http.Request, client string) string {
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	var b strings.Builder
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if client != "" {
		host, err = client, nil
	}
	if err == nil {
		if strings.Contains(host, ":") {
			b.WriteString(`for="[` + host + `]";`)
		} else {
			b.WriteString("for=" + host + ";")
		}
	}
	if r.Host != "" && validHostValue(r.Host) {
		b.WriteString(`host="` + r.Host + `";`)
	}
	b.WriteString("proto=" + proto)
	return b.String()
}

// validHostValue keeps a hostile Host header from breaking the quoted string.
func validHostValue(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c == '"' || c == '\\' || c >= 0x7f {
			return false
		}
	}
	return true
}

// RoundTrip is the transport of the reverse proxy: breaker, retries and
// timing around the pooled http.Transport.
func (p *Proxy) RoundTrip(req *http.Request) (*http.Response, error) {
	x := pipeline.FromContext(req.Context())
	retries := 0
	if p.cfg.Retries != nil && retryable(req) {
		retries = *p.cfg.Retries
	}
	start := time.Now()
	var resp *http.Response
	var err error
	for attempt := 0; ; attempt++ {
		prevErr := err
		resp, err = p.once(req)
		if attempt > 0 && errors.Is(err, ErrCircuitOpen) && prevErr != nil {
			// The failures of this very request opened the breaker: report
			// what actually went wrong, not the breaker.
			err = prevErr
			break
		}
		if err == nil || attempt >= retries || !retryableError(err) || req.Context().Err() != nil {
			break
		}
		if x != nil {
			x.Retries++
		}
		if p.opts.Observer != nil {
			p.opts.Observer.UpstreamRetry(p.opts.API)
		}
		if p.cfg.RetryBackoff > 0 {
			t := time.NewTimer(p.cfg.RetryBackoff.D() << attempt)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return nil, req.Context().Err()
			}
		}
	}
	d := time.Since(start)
	if x != nil {
		x.UpstreamLatency = d
		x.Upstream = p.target.Redacted()
	}
	if p.opts.Observer != nil {
		p.opts.Observer.UpstreamRoundTrip(p.opts.API, d, err)
	}
	return resp, err
}

// errServerFailure marks a 502/503/504 from the upstream as a breaker failure.
var errServerFailure = errors.New("upstream answered 5xx")

func (p *Proxy) once(req *http.Request) (*http.Response, error) {
	if p.breaker == nil {
		return p.transport.RoundTrip(req)
	}
	resp, err := p.breaker.Execute(func() (*http.Response, error) {
		resp, err := p.transport.RoundTrip(req)
		if err == nil && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout) {
			return resp, errServerFailure
		}
		return resp, err
	})
	switch {
	case errors.Is(err, errServerFailure):
		return resp, nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, ErrCircuitOpen
	}
	return resp, err
}

// retryable reports whether a request may be sent twice: an idempotent
// method (RFC 9110 §9.2.2) with no body to replay.
func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody
}

// retryableError reports whether err happened before the upstream could
// have acted on the request: the connection was refused or reset while
// being set up, or a pooled keep-alive connection was found dead.
func retryableError(err error) bool {
	if errors.Is(err, ErrCircuitOpen) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	// A request on a reused connection that the upstream closed meanwhile.
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset by peer")
}

func newTransport(cfg config.Upstream) (*http.Transport, error) {
	dialer := &net.Dialer{Timeout: cfg.DialTimeout.D(), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil, // never route upstream traffic through an environment proxy
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0, // no global cap; per-host below
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		MaxConnsPerHost:       cfg.MaxConnsPerHost,
		IdleConnTimeout:       cfg.IdleConnTimeout.D(),
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout.D(),
		TLSHandshakeTimeout:   cfg.DialTimeout.D(),
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		// Responses are passed through as the upstream sent them; the
		// client negotiates compression with the upstream.
		DisableCompression: true,
	}
	if t := cfg.TLS; t != nil {
		tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, warned at load
		tc.MinVersion = tls.VersionTLS12
		if t.MinVersion == "1.3" {
			tc.MinVersion = tls.VersionTLS13
		}
		if t.CAFile != "" {
			pool, err := config.CertPool(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("upstream tls: %w", err)
			}
			tc.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("upstream tls client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	return tr, nil
}

// bufferPool recycles the 32 KiB copy buffers of the reverse proxy.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

func loggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

var _ http.RoundTripper = (*Proxy)(nil)
var _ http.Handler = (*Proxy)(nil)
