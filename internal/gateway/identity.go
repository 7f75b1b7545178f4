package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/identity/apikey"
	"github.com/bulwarkapi/bulwark/internal/identity/fapi"
	"github.com/bulwarkapi/bulwark/internal/identity/introspect"
	"github.com/bulwarkapi/bulwark/internal/identity/jwtauth"
	"github.com/bulwarkapi/bulwark/internal/identity/mtls"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/spec"
	"github.com/bulwarkapi/bulwark/internal/stage/authn"
)

// provider is a built identity provider with the config it came from, so
// a reload can keep it (its JWKS, its caches) when the config is the same.
type provider struct {
	cfg config.IdentityProvider
	p   identity.Provider
}

// closer is implemented by providers with background work (JWKS refresh).
type closer interface{ Close() }

// buildProviders builds every configured identity provider, reusing those
// of prev whose config did not change. This is the one place that lists
// the provider kinds.
func (g *Gateway) buildProviders(ctx context.Context, cfg *config.Config, prev *snapshot, fail func(string, error)) map[string]*provider {
	out := map[string]*provider{}
	for i, pc := range cfg.Identity {
		path := fmt.Sprintf("identity[%d]", i)
		if prev != nil {
			if old := prev.providers[pc.Name]; old != nil && reflect.DeepEqual(old.cfg, pc) {
				out[pc.Name] = old
				continue
			}
		}
		var p identity.Provider
		var err error
		switch {
		case pc.JWT != nil:
			p, err = jwtauth.New(ctx, jwtauth.Options{Name: pc.Name, Config: *pc.JWT, Observer: g.metrics, Logger: g.logger})
			path += ".jwt"
		case pc.Introspection != nil:
			p, err = introspect.New(introspect.Options{Name: pc.Name, Config: *pc.Introspection, Observer: g.metrics, Logger: g.logger})
			path += ".introspection"
		case pc.APIKey != nil:
			p, err = apikey.New(pc.Name, *pc.APIKey)
			path += ".api_key"
		case pc.MTLS != nil:
			p, err = mtls.New(pc.Name, *pc.MTLS)
			path += ".mtls"
		}
		if err != nil {
			fail(path, err)
			continue
		}
		if p != nil {
			out[pc.Name] = &provider{cfg: pc, p: p}
		}
	}
	return out
}

// closeUnused stops the providers of old that cur does not keep.
func closeUnused(old, cur map[string]*provider) {
	for name, p := range old {
		if cur[name] != p {
			if c, ok := p.p.(closer); ok {
				c.Close()
			}
		}
	}
}

// authnStage builds the authenticate stage of one API, or nil when the
// API authenticates nobody.
func authnStage(a config.API, doc *spec.Document, providers map[string]*provider, logger *slog.Logger) (pipeline.Stage, error) {
	if len(a.Authenticate) == 0 {
		return nil, nil
	}
	o := authn.Options{API: a.Name, Spec: doc, Anonymous: a.Anonymous, SecuritySchemes: a.SecuritySchemes, ByName: map[string]identity.Provider{}, Logger: logger}
	for name, p := range providers {
		o.ByName[name] = p.p
	}
	for _, name := range a.Authenticate {
		if p := providers[name]; p != nil {
			o.Providers = append(o.Providers, p.p)
		}
	}
	f := a.FAPI
	if f == nil {
		f = &config.FAPI{DPoPMaxAge: config.Duration(config.DefaultDPoPMaxAge), DPoPAlgorithms: []string{"ES256", "PS256", "EdDSA"}}
	}
	o.RequireCertificateBinding = f.CertificateBoundTokens
	o.RequireDPoP = f.DPoP
	o.DPoPAlgorithms = f.DPoPAlgorithms
	dv, err := fapi.NewDPoPVerifier(fapi.DPoPOptions{Algorithms: f.DPoPAlgorithms, MaxAge: f.DPoPMaxAge.D()})
	if err != nil {
		return nil, err
	}
	o.DPoP = dv
	return authn.New(o)
}
