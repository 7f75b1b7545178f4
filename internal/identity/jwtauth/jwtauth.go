// Package jwtauth verifies signed JWT access tokens against a JWKS (fetched
// from a URL or read from a file) or a shared HMAC secret.
//
// Verification is strict and fails closed: an algorithm allow-list, no
// "none" in any casing, no key carried by the token itself (jku, x5u, x5c,
// jwk), no crit extensions, iss/aud/exp/nbf/iat with a leeway, required
// claims and a maximum token size. Each distinct token is verified once and
// its identity cached (keyed by the token's SHA-256) until its exp.
//
// The key set is refreshed in the background (honouring Cache-Control), early
// on an unknown kid but at most once per MinRefreshInterval across all
// goroutines, and the last good set keeps serving when the endpoint fails.
// When no set has ever loaded every token fails with *identity.Unavailable.
package jwtauth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

var _ identity.Provider = (*Provider)(nil)

// Options configure a Provider.
type Options struct {
	// Name is the provider name (identity.Identity.Provider, metrics label).
	Name string
	// Config is already defaulted and validated by the config package. Zero
	// durations and sizes fall back to the config defaults, so that a
	// hand-built config cannot disable the refetch rate limit.
	Config   config.JWTProvider
	Observer identity.Observer // may be nil
	Logger   *slog.Logger      // may be nil
	// Client fetches the JWKS. Default: a client trusting Config.CAFile (or
	// the system roots), timing out after FetchTimeout, ignoring proxy
	// environment variables.
	Client *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Provider verifies JWTs for one configured identity provider.
type Provider struct {
	name      string
	cfg       config.JWTProvider
	obs       identity.Observer
	log       *slog.Logger
	client    *http.Client
	ownClient bool
	now       func() time.Time

	allowed    map[string]jwa.SignatureAlgorithm
	hmacSecret []byte
	maxBytes   int
	leeway     time.Duration
	minRefresh time.Duration
	refresh    time.Duration
	timeout    time.Duration

	keys  atomic.Pointer[keySet]
	epoch atomic.Uint64 // bumped when a key disappears: cached identities it verified are dropped
	cache *tokenCache

	base   context.Context // lives until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	fmu   sync.Mutex // guards the fetch state below
	fetch fetchState

	sigChecks atomic.Int64 // signature verifications performed (test hook)
}

// New builds a provider. A jwks_file is loaded now, and an invalid one is an
// error. A jwks_url is fetched once synchronously (bounded by FetchTimeout);
// a failure is logged but does not fail New, so the gateway starts while the
// identity provider is down: until a key set has loaded, every token fails
// with *identity.Unavailable. Close stops the background refresh.
func New(ctx context.Context, o Options) (*Provider, error) {
	cfg := o.Config
	p := &Provider{
		name:       o.Name,
		cfg:        cfg,
		obs:        o.Observer,
		log:        o.Logger,
		client:     o.Client,
		now:        o.Now,
		maxBytes:   int(cfg.MaxTokenBytes),
		leeway:     cfg.Leeway.D(),
		minRefresh: cfg.MinRefreshInterval.D(),
		refresh:    cfg.RefreshInterval.D(),
		timeout:    cfg.FetchTimeout.D(),
		allowed:    map[string]jwa.SignatureAlgorithm{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("provider", o.Name)
	if p.now == nil {
		p.now = time.Now
	}
	if p.maxBytes <= 0 {
		p.maxBytes = config.DefaultMaxTokenBytes
	}
	if p.leeway < 0 {
		p.leeway = 0
	}
	if p.minRefresh <= 0 {
		p.minRefresh = config.DefaultJWKSMinRefresh
	}
	if p.refresh < p.minRefresh {
		p.refresh = max(config.DefaultJWKSRefresh, p.minRefresh)
	}
	if p.timeout <= 0 {
		p.timeout = config.DefaultFetchTimeout
	}
	if len(cfg.Algorithms) == 0 {
		return nil, fmt.Errorf("jwt provider %s: no algorithms allowed", o.Name)
	}
	hasHS := false
	for _, a := range cfg.Algorithms {
		if strings.EqualFold(a, "none") {
			return nil, fmt.Errorf("jwt provider %s: algorithm none is never accepted", o.Name)
		}
		alg, ok := jwa.LookupSignatureAlgorithm(a)
		if !ok || algKeyType(a) == "" {
			return nil, fmt.Errorf("jwt provider %s: unsupported algorithm %q", o.Name, a)
		}
		p.allowed[a] = alg
		hasHS = hasHS || isHMAC(a)
	}
	if hasHS {
		if cfg.HMACSecret == "" {
			return nil, fmt.Errorf("jwt provider %s: HS256/384/512 need hmac_secret", o.Name)
		}
		p.hmacSecret = []byte(cfg.HMACSecret)
	}
	if cfg.CacheSize > 0 {
		p.cache = newTokenCache(cfg.CacheSize)
	}
	p.base, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.fetch.interval = p.refresh

	switch {
	case cfg.JWKSFile != "":
		if err := p.loadFile(); err != nil {
			p.cancel()
			return nil, fmt.Errorf("jwt provider %s: %w", o.Name, err)
		}
	case cfg.JWKSURL != "":
		if p.client == nil {
			c, err := defaultClient(cfg.CAFile, p.timeout)
			if err != nil {
				p.cancel()
				return nil, fmt.Errorf("jwt provider %s: %w", o.Name, err)
			}
			p.client, p.ownClient = c, true
		}
		p.refreshKeys(ctx, true)
	case p.hmacSecret == nil:
		p.cancel()
		return nil, fmt.Errorf("jwt provider %s: jwks_url or jwks_file is required for public-key algorithms", o.Name)
	default:
		// An HMAC provider has nothing to refresh.
		return p, nil
	}
	p.wg.Add(1)
	go p.loop()
	return p, nil
}

// defaultClient builds the JWKS client: its own transport (no proxy from
// the environment: a JWKS fetched through an unexpected proxy is a key
// substitution risk), TLS 1.2+, the configured CA, and no https→http
// redirect.
func defaultClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = 1
	tr.ResponseHeaderTimeout = timeout
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := config.CertPool(caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	tr.TLSClientConfig = tc
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("too many redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("refusing a redirect from https to " + req.URL.Scheme)
			}
			return nil
		},
	}, nil
}

// maxRedirects a JWKS fetch follows: an IdP may move its keys once or twice.
const maxRedirects = 3

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Kind is identity.KindJWT.
func (p *Provider) Kind() identity.Kind { return identity.KindJWT }

// Authenticate verifies the bearer (or DPoP-scheme) token of r. With no such
// token, or one with no dot at all (an opaque token, left for an
// introspection provider), it returns identity.ErrNoCredential. Anything
// with a dot is this provider's to judge.
func (p *Provider) Authenticate(ctx context.Context, r *identity.Request) (*identity.Identity, error) {
	if r == nil {
		return nil, identity.ErrNoCredential
	}
	token, _, ok := identity.BearerToken(r.Header)
	if !ok || !strings.Contains(token, ".") {
		return nil, identity.ErrNoCredential
	}
	return p.Verify(ctx, token)
}

// Verify verifies token and returns its identity, shared with other callers
// of the same token (do not modify it). A rejected token gives an
// *identity.Error with Code invalid_token; a key set that never loaded gives
// *identity.Unavailable.
func (p *Provider) Verify(ctx context.Context, token string) (*identity.Identity, error) {
	if len(token) > p.maxBytes {
		return nil, fail(reasonTooLarge, fmt.Errorf("token of %d bytes exceeds max_token_bytes %d", len(token), p.maxBytes))
	}
	now := p.now()
	var sum [sha256.Size]byte
	// The epoch is read before the key set, so that an identity verified
	// with a key removed meanwhile is stored under the old epoch and dropped.
	epoch := p.epoch.Load()
	if p.cache != nil {
		sum = sha256.Sum256([]byte(token))
		id, ok := p.cache.get(&sum, now, epoch)
		if p.obs != nil {
			p.obs.CacheLookup(p.name, ok)
		}
		if ok {
			return id, nil
		}
	}
	id, err := p.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if p.cache != nil && id.Expiry.After(now) {
		p.cache.put(&sum, id, epoch, now)
	}
	return id, nil
}

// KeySetInfo reports the usable keys, when the key set was last loaded or
// confirmed unchanged, and whether it is stale: the last refresh failed (or
// none ever succeeded), so an older set (or none) is serving. An HMAC
// provider reports its one secret, never stale.
func (p *Provider) KeySetInfo() (keys int, fetched time.Time, stale bool) {
	if p.hmacSecret != nil {
		return 1, time.Time{}, false
	}
	if ks := p.keys.Load(); ks != nil {
		keys = len(ks.keys)
	}
	p.fmu.Lock()
	defer p.fmu.Unlock()
	return keys, p.fetch.fetched, p.fetch.stale || keys == 0
}

// Close stops the background refresh and waits for a fetch in flight.
// Verify keeps working with the last key set after Close.
func (p *Provider) Close() {
	p.fmu.Lock()
	if p.fetch.closed {
		p.fmu.Unlock()
		return
	}
	p.fetch.closed = true
	p.fmu.Unlock()
	p.cancel()
	p.wg.Wait()
	if p.ownClient {
		p.client.CloseIdleConnections()
	}
}
