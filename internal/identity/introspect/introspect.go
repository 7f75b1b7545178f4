// Package introspect verifies opaque access tokens with an OAuth 2.0 token
// introspection endpoint (RFC 7662). It authenticates to the endpoint with
// client_secret_basic or client_secret_post, caches verdicts by SHA-256 of
// the token (never beyond the token's exp), coalesces concurrent lookups of
// one token into one request, and fails closed when the endpoint fails.
package introspect

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

// Limits.
const (
	// MaxResponseBytes bounds an introspection response: real ones are a
	// few hundred bytes; a larger body is a broken or hostile endpoint.
	MaxResponseBytes = 1 << 20
	// MaxTokenBytes bounds a token sent to the endpoint. Opaque tokens are
	// under 100 bytes and JWTs a few KiB; a client must not be able to make
	// the gateway post 64 KiB per request to the authorization server.
	MaxTokenBytes = 16 << 10
	// warnInterval rate-limits the endpoint-failure warning: one line per
	// 30 s says the endpoint is down without flooding the log at request
	// rate; the metric (Observer.DependencyError) counts every failure.
	warnInterval = 30 * time.Second
	// maxAuthorizationBytes mirrors the bound of identity.BearerToken, to
	// tell an oversized header from an absent one.
	maxAuthorizationBytes = 64 << 10
	// maxDrainBytes is read from a non-200 response so that its connection
	// can be reused; a longer body is abandoned with its connection.
	maxDrainBytes = 4 << 10
	// idleConnsPerHost keeps connections to the one endpoint warm at
	// gateway concurrency instead of Go's default of 2.
	idleConnsPerHost = 64
	idleConnTimeout  = 90 * time.Second
)

// Client authentication methods (RFC 7591 token_endpoint_auth_method).
const (
	AuthBasic = "client_secret_basic"
	AuthPost  = "client_secret_post"
)

// Options configure a Provider.
type Options struct {
	// Name is the configured provider name.
	Name   string
	Config config.IntrospectionProvider
	// Observer receives cache and dependency events; nil is allowed.
	Observer identity.Observer
	// Logger gets the rate-limited endpoint-failure warning; nil discards.
	Logger *slog.Logger
	// Client calls the endpoint. Nil: a client of New's own that trusts
	// Config.CAFile (else the system roots), ignores proxy environment
	// variables, follows no redirects and times out after Config.Timeout.
	Client *http.Client
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Provider is one configured introspection endpoint. It is safe for
// concurrent use.
type Provider struct {
	name      string
	endpoint  string
	clientID  string
	secret    string
	post      bool
	timeout   time.Duration
	posTTL    time.Duration
	negTTL    time.Duration
	verifier  verifier
	client    *http.Client
	ownClient bool
	obs       identity.Observer
	log       *slog.Logger
	now       func() time.Time

	cache   *cache
	flights flights

	lastWarn   atomic.Int64 // unix ns of the last warning, 0 before the first
	suppressed atomic.Int64 // failures not logged since the last warning
}

var _ identity.Provider = (*Provider)(nil)

// New builds a provider from validated configuration.
func New(o Options) (*Provider, error) {
	c := o.Config
	p := &Provider{
		name:     o.Name,
		endpoint: c.URL,
		clientID: c.ClientID,
		secret:   c.ClientSecret,
		timeout:  c.Timeout.D(),
		posTTL:   c.CacheTTL.D(),
		negTTL:   c.NegativeCacheTTL.D(),
		verifier: verifier{issuer: c.Issuer, audiences: c.Audiences, claims: c.Claims},
		client:   o.Client,
		obs:      o.Observer,
		log:      o.Logger,
		now:      o.Now,
		cache:    newCache(c.CacheSize),
	}
	switch c.AuthMethod {
	case AuthBasic, "":
	case AuthPost:
		p.post = true
	default:
		return nil, fmt.Errorf("introspection provider %s: unknown auth_method %q", o.Name, c.AuthMethod)
	}
	if p.timeout <= 0 {
		p.timeout = config.DefaultIntrospectTimeout
	}
	if p.verifier.claims.Subject == "" {
		p.verifier.claims.Subject = config.DefaultSubjectClaim
	}
	if p.verifier.claims.Scopes == "" {
		p.verifier.claims.Scopes = config.DefaultScopesClaim
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.client == nil {
		cl, err := newClient(c.CAFile, p.timeout)
		if err != nil {
			return nil, fmt.Errorf("introspection provider %s: %w", o.Name, err)
		}
		p.client, p.ownClient = cl, true
	}
	return p, nil
}

func newClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := config.CertPool(caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 nil, // never HTTPS_PROXY: tokens go only to the configured endpoint
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          idleConnsPerHost,
		MaxIdleConnsPerHost:   idleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect would re-send the token (and, with POST auth, the
		// client secret) elsewhere: it is a failure, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Kind is identity.KindIntrospection.
func (p *Provider) Kind() identity.Kind { return identity.KindIntrospection }

// Close releases the idle connections of a client New built itself (a
// reload that drops or replaces the provider calls it). In-flight lookups
// finish normally.
func (p *Provider) Close() {
	if p.ownClient {
		p.client.CloseIdleConnections()
	}
}

// Authenticate introspects the Bearer (or DPoP) access token of r. It
// returns identity.ErrNoCredential when r has no such token; two
// Authorization headers, an oversized one, or a Bearer/DPoP one that is
// malformed are invalid_request.
func (p *Provider) Authenticate(ctx context.Context, r *identity.Request) (*identity.Identity, error) {
	token, _, ok := identity.BearerToken(r.Header)
	if !ok {
		vals := r.Header.Values("Authorization")
		switch {
		case len(vals) > 1:
			return nil, &identity.Error{Code: identity.CodeInvalidRequest, Reason: ReasonAuthMultiple, Detail: "more than one Authorization header"}
		case len(vals) == 1 && len(vals[0]) > maxAuthorizationBytes:
			return nil, &identity.Error{Code: identity.CodeInvalidRequest, Reason: ReasonAuthTooLarge, Detail: "Authorization header too large"}
		case len(vals) == 1 && tokenScheme(vals[0]):
			return nil, &identity.Error{Code: identity.CodeInvalidRequest, Reason: ReasonMalformedHeader, Detail: "malformed Authorization header"}
		}
		return nil, identity.ErrNoCredential
	}
	return p.Introspect(ctx, token)
}

// tokenScheme reports whether an Authorization value claims the Bearer or
// DPoP scheme.
func tokenScheme(v string) bool {
	scheme, _, _ := strings.Cut(strings.TrimLeft(v, " "), " ")
	return strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")
}

// Introspect returns the identity of an access token: from the cache, or
// by asking the endpoint. Errors: *identity.Error when the token is
// refused, *identity.Unavailable when the endpoint failed or ctx ended
// first (fail closed: a failure is never taken for an active token).
// The returned identity may be shared and must not be modified.
func (p *Provider) Introspect(ctx context.Context, token string) (*identity.Identity, error) {
	if token == "" {
		return nil, identity.ErrNoCredential
	}
	if len(token) > MaxTokenBytes {
		return nil, &identity.Error{Code: identity.CodeInvalidRequest, Reason: ReasonTokenTooLarge, Detail: "access token too large"}
	}
	k := cacheKey(sha256.Sum256([]byte(token)))
	if e, ok := p.cache.get(k, p.now()); ok {
		p.cacheLookup(true)
		return e.result().own()
	}
	p.cacheLookup(false)
	// The request is detached from the first caller's cancellation (others
	// may wait for it) but keeps its values; fetch bounds it by Timeout.
	detached := context.WithoutCancel(ctx)
	res := p.flights.do(ctx, k,
		func() (result, bool) {
			e, ok := p.cache.get(k, p.now())
			return e.result(), ok
		},
		func() result { return p.lookup(detached, token, k) })
	if cerr := ctx.Err(); cerr != nil && res.err == cerr {
		// This caller's context ended while waiting: not an endpoint failure.
		return nil, &identity.Unavailable{Provider: p.name, Err: res.err}
	}
	return res.own()
}

func (e entry) result() result {
	if e.fail != nil {
		return result{err: e.fail}
	}
	return result{id: e.id}
}

// own returns the result with a private copy of a shared error value.
func (r result) own() (*identity.Identity, error) {
	var ie *identity.Error
	var ue *identity.Unavailable
	switch {
	case r.err == nil:
		return r.id, nil
	case errors.As(r.err, &ie):
		c := *ie
		return nil, &c
	case errors.As(r.err, &ue):
		c := *ue
		return nil, &c
	}
	return nil, r.err
}

// lookup asks the endpoint about token and caches the verdict. Endpoint
// failures are not cached: the next request tries again.
func (p *Provider) lookup(ctx context.Context, token string, k cacheKey) result {
	resp, err := p.fetch(ctx, token)
	if err != nil {
		p.dependencyFailed(err)
		return result{err: &identity.Unavailable{Provider: p.name, Err: err}}
	}
	now := p.now()
	id, fail := p.verifier.verify(resp, now)
	if fail != nil {
		until := now.Add(p.negTTL)
		if fail.Reason == ReasonNotYetValid && resp.nbf.Before(until) {
			until = resp.nbf // it may become valid: do not refuse it beyond nbf
		}
		p.cache.put(k, entry{fail: fail, expires: until}, now)
		return result{err: fail}
	}
	id.Provider = p.name
	// Positive entries live CacheTTL at most, and never beyond exp: a
	// token without exp is re-checked every CacheTTL (revocation).
	until := now.Add(p.posTTL)
	if !resp.exp.IsZero() && resp.exp.Before(until) {
		until = resp.exp
	}
	p.cache.put(k, entry{id: id, expires: until}, now)
	return result{id: id}
}

// fetch posts token to the endpoint and parses the answer. Its error never
// contains the token or the client secret.
func (p *Provider) fetch(ctx context.Context, token string) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if p.post {
		form.Set("client_id", p.clientID)
		form.Set("client_secret", p.secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return response{}, fmt.Errorf("introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if !p.post {
		req.Header.Set("Authorization", basicAuth(p.clientID, p.secret))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("introspection endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrainBytes)
		return response{}, fmt.Errorf("introspection endpoint: status %d", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return response{}, fmt.Errorf("introspection endpoint: content type %q is not JSON", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return response{}, fmt.Errorf("introspection endpoint: read response: %w", err)
	}
	if len(body) > MaxResponseBytes {
		return response{}, fmt.Errorf("introspection endpoint: response larger than %d bytes", MaxResponseBytes)
	}
	r, err := parseResponse(body)
	if err != nil {
		return response{}, fmt.Errorf("introspection endpoint: %w", err)
	}
	return r, nil
}

// basicAuth is client_secret_basic: RFC 6749 §2.3.1 form-urlencodes the
// client id and secret before joining them, unlike plain HTTP Basic.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func (p *Provider) cacheLookup(hit bool) {
	if p.obs != nil && p.cache != nil {
		p.obs.CacheLookup(p.name, hit)
	}
}

// dependencyFailed reports an endpoint failure to the observer (always)
// and the log (at most once per warnInterval, with the count suppressed).
func (p *Provider) dependencyFailed(err error) {
	if p.obs != nil {
		p.obs.DependencyError(p.name)
	}
	now := p.now().UnixNano()
	last := p.lastWarn.Load()
	if (last != 0 && now-last < int64(warnInterval)) || !p.lastWarn.CompareAndSwap(last, now) {
		p.suppressed.Add(1)
		return
	}
	p.log.Warn("introspection endpoint failed; its tokens are refused until it recovers",
		"provider", p.name, "url", p.endpoint, "err", err, "suppressed", p.suppressed.Swap(0))
}
