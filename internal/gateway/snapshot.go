package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	"github.com/bulwarkapi/bulwark/internal/spec"
	"github.com/bulwarkapi/bulwark/internal/stage/authn"
	"github.com/bulwarkapi/bulwark/internal/stage/authz"
	stagebf "github.com/bulwarkapi/bulwark/internal/stage/bruteforce"
	"github.com/bulwarkapi/bulwark/internal/stage/cooldown"
	"github.com/bulwarkapi/bulwark/internal/stage/observe"
	stagerl "github.com/bulwarkapi/bulwark/internal/stage/ratelimit"
	"github.com/bulwarkapi/bulwark/internal/stage/route"
	stagethrottle "github.com/bulwarkapi/bulwark/internal/stage/throttle"
	"github.com/bulwarkapi/bulwark/internal/upstream"
)

// snapshot is everything a request needs from one validated configuration.
// It is built whole, checked, then swapped in atomically; requests that
// started on an older snapshot finish on it.
type snapshot struct {
	cfg       *config.Config
	pipeline  *pipeline.Pipeline
	route     *route.Stage
	proxies   map[string]*upstream.Proxy      // by API name
	specs     map[string]*spec.Document       // by API name
	providers map[string]*provider            // identity providers by name
	wafs      map[string]wafEntry             // WAFs by API name, reused on reload
	tls       []*tls.Config                   // per listener; nil for plain HTTP
	hsts      []string                        // per listener; "" for none
	clients   clientAddrs                     // how the client address is resolved
	throttles map[string]*stagethrottle.Stage // by API name, reused on reload
	files     []string                        // every file the snapshot was built from, for the watcher
	sampler   *observe.Sampler                // body sampling counts, reused on reload; nil without events
	loaded    time.Time
}

// observeStage returns the body observation stage when exchange events
// are on and something is to be observed, else nil. The sampler carries
// over a reload that keeps the sampling settings.
func (g *Gateway) observeStage(cfg *config.Config, s, prev *snapshot) *observe.Stage {
	b := cfg.Inventory.Bodies
	if cfg.Inventory.Disabled || g.opts.NoAudit || (!b.SchemasOn() && !b.ReturnedIDsOn()) {
		return nil
	}
	if prev != nil && prev.sampler != nil && prev.cfg.Inventory.Bodies.SampleFirst == b.SampleFirst &&
		prev.cfg.Inventory.Bodies.SampleEvery == b.SampleEvery {
		s.sampler = prev.sampler
	} else {
		s.sampler = observe.NewSampler(b.SampleFirst, b.SampleEvery)
	}
	return observe.New(observe.Options{
		Schemas:         b.SchemasOn(),
		ReturnedIDs:     b.ReturnedIDsOn(),
		MaxRequestBytes: int64(cfg.Limits.MaxBodyBytes),
		Hash:            policy.HashID,
	}, s.sampler)
}

// aeadSuites are the TLS 1.2 cipher suites Bulwark offers: ECDHE for
// forward secrecy and AEAD only (no CBC, no RSA key exchange). TLS 1.3
// suites are not configurable in Go and are all AEAD.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// compile builds a snapshot from cfg. prev, when not nil, lends its
// upstream proxies to APIs whose upstream did not change, so warm
// connections and breaker state survive a reload. Problems are returned as
// config.Errors located in the config file.
func (g *Gateway) compile(ctx context.Context, cfg *config.Config, prev *snapshot) (*snapshot, error) {
	s := &snapshot{
		cfg:     cfg,
		proxies: map[string]*upstream.Proxy{},
		specs:   map[string]*spec.Document{},
		loaded:  time.Now(),
	}
	if cfg.File != "" {
		s.files = append(s.files, cfg.File)
	}
	var errs config.Errors
	fail := func(path string, err error) { errs = append(errs, cfg.Errorf(path, "%v", err)) }

	for i, ln := range cfg.Listeners {
		var tc *tls.Config
		hsts := ""
		if ln.TLS != nil {
			var err error
			tc, err = serverTLS(ln.TLS)
			if err != nil {
				fail(fmt.Sprintf("listeners[%d].tls", i), err)
			}
			s.files = append(s.files, ln.TLS.CertFile, ln.TLS.KeyFile)
			if ln.TLS.ClientCAFile != "" {
				s.files = append(s.files, ln.TLS.ClientCAFile)
			}
			if ln.HSTS != nil {
				hsts = hstsValue(ln.HSTS)
			}
		}
		s.tls = append(s.tls, tc)
		s.hsts = append(s.hsts, hsts)
	}

	for i, t := range cfg.Forwarding.TrustedProxies {
		pfx, err := config.ParsePrefix(t)
		if err != nil {
			fail(fmt.Sprintf("forwarding.trusted_proxies[%d]", i), err)
			continue
		}
		s.clients.trusted = append(s.clients.trusted, pfx)
	}
	s.clients.forwarded = strings.EqualFold(cfg.Forwarding.ClientAddressHeader, "Forwarded")

	s.providers = g.buildProviders(ctx, cfg, prev, fail)
	authStages := map[string]pipeline.Stage{}
	rateStages, throttleStages := map[string]pipeline.Stage{}, map[string]pipeline.Stage{}
	preAuthRates := map[string]pipeline.Stage{}
	loginReq, loginResp := map[string]pipeline.Stage{}, map[string]pipeline.ResponseStage{}
	s.throttles = map[string]*stagethrottle.Stage{}
	inspect := newStageSet()
	authzReq, authzResp := map[string]pipeline.Stage{}, map[string]pipeline.ResponseStage{}
	env, err := policy.NewEnv()
	if err != nil {
		return nil, fmt.Errorf("policy environment: %w", err)
	}
	s.wafs = map[string]wafEntry{}

	var apis []*route.API
	for i, a := range cfg.APIs {
		p := fmt.Sprintf("apis[%d]", i)
		ra := &route.API{Name: a.Name, PathPrefix: a.Match.PathPrefix}
		if a.Mode == "monitor" {
			ra.Mode = pipeline.Monitor
		}
		for _, h := range a.Match.Hosts {
			ra.Hosts = append(ra.Hosts, strings.ToLower(h))
		}
		if a.Spec != "" {
			s.files = append(s.files, a.Spec)
			doc, err := spec.Load(ctx, a.Spec)
			if err != nil {
				fail(p+".spec", err)
			} else if r, err := spec.NewRouter(doc); err != nil {
				fail(p+".spec", err)
			} else {
				s.specs[a.Name] = doc
				ra.Spec = r
			}
		}
		opts := upstream.Options{
			API:             a.Name,
			RequestIDHeader: cfg.RequestID.Header,
			StripHeaders:    cfg.Forwarding.StripHeaders,
			PathPrefix:      a.Match.PathPrefix,
			Logger:          g.logger,
			Observer:        g.metrics,
			ErrorHandler:    g.upstreamError,
			ModifyResponse:  g.modifyResponse,
			IdentityHeaders: a.IdentityHeaders,
		}
		if st, err := authnStage(a, s.specs[a.Name], s.providers, g.logger); err != nil {
			fail(p+".authenticate", err)
		} else if st != nil {
			authStages[a.Name] = st
		}
		g.addRateLimits(preAuthRates, rateStages, env, a, s.specs[a.Name], fail, p)
		g.addThrottle(throttleStages, s.throttles, a, prev, fail, p)
		g.addBruteForce(loginReq, loginResp, env, a, s.specs[a.Name], fail, p)
		g.addInspection(inspect, a, s.specs[a.Name], cfg, prev, fail, p)
		addAuthz(authzReq, authzResp, env, a, s.specs[a.Name], fail, p)
		if st, ok := inspect.waf[a.Name]; ok {
			s.wafs[a.Name] = wafEntry{cfg: *a.WAF, stage: st}
		}
		var px *upstream.Proxy
		if prev != nil {
			if old := prev.proxies[a.Name]; old != nil && sameProxy(old, a.Upstream, opts) {
				px = old
			}
		}
		if px == nil {
			var err error
			px, err = upstream.New(a.Upstream, opts)
			if err != nil {
				fail(p+".upstream", err)
				continue
			}
		}
		if t := a.Upstream.TLS; t != nil {
			for _, f := range []string{t.CAFile, t.CertFile, t.KeyFile} {
				if f != "" {
					s.files = append(s.files, f)
				}
			}
		}
		s.proxies[a.Name] = px
		ra.Handler = px
		apis = append(apis, ra)
	}
	if len(errs) > 0 {
		var prevProviders map[string]*provider
		if prev != nil {
			prevProviders = prev.providers
		}
		closeUnused(s.providers, prevProviders)
		var prevWAFs map[string]wafEntry
		if prev != nil {
			prevWAFs = prev.wafs
		}
		retireWAFs(s.wafs, prevWAFs, 0)
		return nil, errs
	}
	s.route = route.New(apis)
	stages := []pipeline.Stage{s.route}
	if len(preAuthRates) > 0 {
		// Limits by address and operation count before authentication,
		// so a flood of bad credentials costs no signature checks.
		stages = append(stages, pipeline.NewByAPI(stagerl.StageName, preAuthRates))
	}
	if len(authStages) > 0 {
		stages = append(stages, pipeline.NewByAPI(authn.StageName, authStages))
	}
	if cfg.Detect.Mode == "enforce" && !cfg.Inventory.Disabled {
		stages = append(stages, cooldown.New(gatewayCoolDown{g}))
	}
	if len(rateStages) > 0 {
		stages = append(stages, pipeline.NewByAPI(stagerl.StageName, rateStages))
	}
	if len(loginReq) > 0 {
		stages = append(stages, pipeline.NewByAPI(stagebf.StageName, loginReq))
	}
	inspectReq, inspectResp := inspect.stages()
	stages = append(stages, inspectReq...)
	if len(authzReq) > 0 {
		stages = append(stages, pipeline.NewByAPI(authz.StageName, authzReq))
	}
	obs := g.observeStage(cfg, s, prev)
	if obs != nil {
		// After every check: only what the gateway lets through teaches
		// the inventory a body shape.
		stages = append(stages, obs)
	}
	if len(throttleStages) > 0 {
		// Last: a slot is held only by requests every check let through,
		// and only for as long as the upstream works on them.
		stages = append(stages, pipeline.NewByAPI(stagethrottle.StageName, throttleStages))
	}
	var respStages []pipeline.ResponseStage
	if len(loginResp) > 0 {
		// First: a login's outcome is the upstream's answer, before any
		// later stage replaces it.
		respStages = append(respStages, pipeline.NewByAPIResponse(stagebf.StageName, loginResp))
	}
	if len(authzResp) > 0 {
		// The owner check runs first: a response it refuses is never
		// validated or scanned.
		respStages = append(respStages, pipeline.NewByAPIResponse(authz.StageName, authzResp))
	}
	respStages = append(respStages, inspectResp...)
	if obs != nil {
		// Last: the body as the client receives it (masked).
		respStages = append(respStages, obs)
	}
	s.pipeline = pipeline.New(g.metrics, stages, respStages)
	slices.Sort(s.files)
	s.files = slices.Compact(s.files)
	return s, nil
}

// sameProxy reports whether an existing proxy can serve a new config.
func sameProxy(p *upstream.Proxy, u config.Upstream, o upstream.Options) bool {
	po := p.Options()
	return reflect.DeepEqual(p.Config(), u) &&
		po.RequestIDHeader == o.RequestIDHeader &&
		po.PathPrefix == o.PathPrefix &&
		reflect.DeepEqual(po.IdentityHeaders, o.IdentityHeaders) &&
		slices.Equal(po.StripHeaders, o.StripHeaders) &&
		!tlsFilesChanged(p)
}

// tlsFilesChanged is conservative: a proxy with upstream TLS files is
// rebuilt on every reload so that rotated client certificates are read.
func tlsFilesChanged(p *upstream.Proxy) bool { return p.Config().TLS != nil }

func serverTLS(t *config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s: %w", t.CertFile, err)
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: aeadSuites,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if t.MinVersion == "1.3" {
		tc.MinVersion = tls.VersionTLS13
	}
	switch t.ClientAuth {
	case "optional":
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if t.ClientCAFile != "" {
		pool, err := config.CertPool(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file: %w", err)
		}
		tc.ClientCAs = pool
	}
	return tc, nil
}

func hstsValue(h *config.HSTS) string {
	age := h.MaxAge.D()
	if age == 0 {
		age = 365 * 24 * time.Hour // one year, the preload list's minimum
	}
	v := "max-age=" + strconv.FormatInt(int64(age/time.Second), 10)
	if h.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}
