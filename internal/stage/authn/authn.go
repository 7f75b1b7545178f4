// Package authn is the authenticate stage: it finds which credentials an
// operation requires (the spec's security requirements, or the API's
// authenticate providers), verifies them with the identity providers, runs
// the FAPI token-binding checks, and puts one verified identity on the
// exchange. Failures are 401 with WWW-Authenticate and an RFC 6750 error
// code, 403 for insufficient_scope, and 503 when an identity provider the
// decision depends on is down (fail closed). The reason goes to the audit
// log; the credential never does.
package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/identity/fapi"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// StageName is the stage's name in decisions, metrics and the audit log.
const StageName = "authenticate"

// retryAfterUnavailable is the Retry-After, in seconds, of a 503 caused by
// an identity provider that is down.
const retryAfterUnavailable = "5"

// scheme is one security scheme of a requirement: any of its providers may
// satisfy it, and the identity must hold all its scopes.
type scheme struct {
	name      string
	providers []identity.Provider
	scopes    []string
}

// alternative is a set of schemes that must all be satisfied (AND).
type alternative []scheme

// requirement is what an operation needs: any one alternative (OR), or
// nothing when anonymous.
type requirement struct {
	anonymous    bool
	alternatives []alternative
}

// Options configure the stage for one API.
type Options struct {
	API string
	// Providers are the API's authenticate providers, in order.
	Providers []identity.Provider
	// ByName resolves provider names used in SecuritySchemes.
	ByName map[string]identity.Provider
	// Spec, when set, supplies per-operation security requirements.
	Spec *spec.Document
	// Anonymous operations need no credential.
	Anonymous []string
	// SecuritySchemes maps spec scheme names to provider names.
	SecuritySchemes map[string][]string
	// RequireCertificateBinding and RequireDPoP are the API's fapi block.
	RequireCertificateBinding bool
	RequireDPoP               bool
	// DPoP verifies DPoP proofs; it is used whenever a token is DPoP-bound
	// or sent with the DPoP scheme, required or not.
	DPoP *fapi.DPoPVerifier
	// DPoPAlgorithms are advertised in WWW-Authenticate: DPoP algs="...".
	DPoPAlgorithms []string
	Logger         *slog.Logger
}

// Stage authenticates the requests of one API.
type Stage struct {
	o         Options
	byOp      map[string]*requirement
	fallback  *requirement // operations not in the spec, or no spec
	realm     string
	dpopAlgs  string
	needQuery bool
}

var _ pipeline.Stage = (*Stage)(nil)

// New precomputes the requirement of every operation. It fails when a
// spec's security scheme can be served by none of the API's providers, so
// a gap is a config error rather than an open door.
func New(o Options) (*Stage, error) {
	if len(o.Providers) == 0 {
		return nil, errors.New("authenticate: no providers")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Stage{o: o, byOp: map[string]*requirement{}, realm: o.API, dpopAlgs: strings.Join(o.DPoPAlgorithms, " ")}
	s.fallback = &requirement{alternatives: []alternative{{{name: "any", providers: o.Providers}}}}
	for _, p := range o.Providers {
		if q, ok := p.(interface{ QueryParam() string }); ok && q.QueryParam() != "" {
			s.needQuery = true
		}
	}
	anon := map[string]bool{}
	for _, op := range o.Anonymous {
		anon[op] = true
	}
	var errs []error
	if o.Spec != nil {
		for _, op := range o.Spec.Operations {
			req, err := s.fromSpec(op)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.byOp[op.Key] = req
		}
	}
	for op := range anon {
		s.byOp[op] = &requirement{anonymous: true}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// fromSpec turns an operation's security requirements into a requirement.
func (s *Stage) fromSpec(op *spec.Operation) (*requirement, error) {
	if len(op.Security) == 0 {
		if op.SecurityExplicit {
			return &requirement{anonymous: true}, nil // security: [] in the spec
		}
		return s.fallback, nil // the spec says nothing: the API's providers
	}
	req := &requirement{}
	for _, sr := range op.Security {
		if len(sr) == 0 {
			// An empty object among the alternatives ({}) makes
			// authentication optional (OpenAPI 3 §4.8.30).
			return &requirement{anonymous: true}, nil
		}
		var alt alternative
		names := make([]string, 0, len(sr))
		for name := range sr {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			provs, err := s.providersFor(name)
			if err != nil {
				return nil, fmt.Errorf("operation %s: %w", op.Key, err)
			}
			sc := scheme{name: name, providers: provs}
			if st, ok := s.o.Spec.SecurityScheme(name); ok && (st.Type == "oauth2" || st.Type == "openIdConnect") {
				sc.scopes = sr[name]
			}
			alt = append(alt, sc)
		}
		req.alternatives = append(req.alternatives, alt)
	}
	return req, nil
}

// providersFor resolves a spec security scheme to providers: the explicit
// security_schemes mapping, else the API's providers whose kind fits the
// scheme's type.
func (s *Stage) providersFor(name string) ([]identity.Provider, error) {
	if names, ok := s.o.SecuritySchemes[name]; ok {
		var out []identity.Provider
		for _, n := range names {
			if p := s.o.ByName[n]; p != nil {
				out = append(out, p)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("security scheme %q maps to no provider", name)
		}
		return out, nil
	}
	st, ok := s.o.Spec.SecurityScheme(name)
	if !ok {
		return nil, fmt.Errorf("security scheme %q is not defined in components.securitySchemes", name)
	}
	var kinds []identity.Kind
	switch {
	case st.Type == "oauth2", st.Type == "openIdConnect", st.Type == "http" && st.Scheme == "bearer":
		kinds = []identity.Kind{identity.KindJWT, identity.KindIntrospection}
	case st.Type == "apiKey":
		kinds = []identity.Kind{identity.KindAPIKey}
	case st.Type == "mutualTLS":
		kinds = []identity.Kind{identity.KindMTLS}
	default:
		return nil, fmt.Errorf("security scheme %q (%s %s) is not supported; map it with security_schemes", name, st.Type, st.Scheme)
	}
	var out []identity.Provider
	for _, p := range s.o.Providers {
		for _, k := range kinds {
			if p.Kind() == k {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("security scheme %q (%s) needs a provider of kind %v in authenticate, or a security_schemes mapping", name, st.Type, kinds)
	}
	return out, nil
}

// Name implements pipeline.Stage.
func (s *Stage) Name() string { return StageName }

// outcome of one provider on one request, evaluated at most once.
type outcome struct {
	id  *identity.Identity
	err error
}

// Handle implements pipeline.Stage.
func (s *Stage) Handle(ctx context.Context, x *pipeline.Exchange) pipeline.Decision {
	req := s.fallback
	key := x.Operation
	if key == "" {
		// No spec operation matched (or the API has no spec): anonymous
		// entries name the literal path. Anything not spelled exactly so
		// ("/health/", "/%68ealth") needs a credential: fail safe.
		key = x.Request.Method + " " + x.Request.URL.EscapedPath()
	}
	if r, ok := s.byOp[key]; ok {
		req = r
	}
	if req.anonymous {
		return pipeline.Continue
	}
	hr := x.Request
	if n := len(hr.Header.Values("Authorization")); n > 1 {
		return s.fail(&identity.Error{Code: identity.CodeInvalidRequest, Reason: "authorization_multiple", Detail: "Send one Authorization header."}, nil)
	}
	ir := s.request(x)
	results := make(map[identity.Provider]outcome, len(s.o.Providers))
	eval := func(p identity.Provider) outcome {
		if o, ok := results[p]; ok {
			return o
		}
		id, err := p.Authenticate(ctx, ir)
		o := outcome{id: id, err: err}
		results[p] = o
		return o
	}

	var credErr *identity.Error
	var unavailable *identity.Unavailable
	var missingScopes []string
	for _, alt := range req.alternatives {
		var primary *identity.Identity
		ok := true
		for _, sc := range alt {
			id := s.satisfy(sc, eval, &credErr, &unavailable)
			if id == nil {
				ok = false
				break
			}
			if miss := missing(id, sc.scopes); len(miss) > 0 {
				if missingScopes == nil {
					missingScopes = sc.scopes
				}
				ok = false
				break
			}
			if primary == nil || primary.Kind == identity.KindMTLS {
				primary = id
			}
		}
		if !ok || primary == nil {
			continue
		}
		if err := s.binding(ir, primary); err != nil {
			return s.fail(err, nil)
		}
		x.Identity = primary
		return pipeline.Continue
	}
	switch {
	case credErr != nil:
		return s.fail(credErr, nil)
	case missingScopes != nil:
		return s.fail(&identity.Error{Code: identity.CodeInsufficientScope, Reason: "insufficient_scope", Detail: "The access token lacks a scope this operation requires."}, missingScopes)
	case unavailable != nil:
		s.o.Logger.Warn("authentication failed closed: identity provider unavailable", "api", s.o.API, "provider", unavailable.Provider, "error", unavailable.Err)
		return pipeline.Decision{Action: pipeline.Stop, Status: http.StatusServiceUnavailable, Reason: "identity_provider_unavailable",
			Detail:  "Credentials cannot be verified right now; retry shortly.",
			Headers: http.Header{"Retry-After": {retryAfterUnavailable}}}
	default:
		return s.fail(&identity.Error{Reason: "credentials_missing", Detail: "This operation requires authentication."}, nil)
	}
}

// satisfy returns the first identity one of the scheme's providers
// verifies, remembering the first credential error and unavailability.
func (s *Stage) satisfy(sc scheme, eval func(identity.Provider) outcome, credErr **identity.Error, unavailable **identity.Unavailable) *identity.Identity {
	for _, p := range sc.providers {
		o := eval(p)
		if o.err == nil && o.id != nil {
			return o.id
		}
		var ie *identity.Error
		var ue *identity.Unavailable
		switch {
		case errors.Is(o.err, identity.ErrNoCredential):
		case errors.As(o.err, &ie):
			if *credErr == nil {
				*credErr = ie
			}
		case errors.As(o.err, &ue):
			if *unavailable == nil {
				*unavailable = ue
			}
		case o.err != nil:
			if *unavailable == nil {
				*unavailable = &identity.Unavailable{Provider: p.Name(), Err: o.err}
			}
		}
	}
	return nil
}

// binding runs the FAPI checks: certificate-bound tokens (RFC 8705) and
// DPoP (RFC 9449). A token that carries a binding is always checked, even
// where the API does not require one: a bound token used without its key
// is a stolen token.
func (s *Stage) binding(r *identity.Request, id *identity.Identity) error {
	if id.Kind != identity.KindJWT && id.Kind != identity.KindIntrospection {
		return nil
	}
	if s.o.RequireCertificateBinding || id.Confirmation.X5tS256 != "" {
		if err := fapi.CheckCertificateBinding(id, r.PeerCertificates); err != nil {
			return err
		}
	}
	token, scheme, _ := identity.BearerToken(r.Header)
	if s.o.RequireDPoP || id.Confirmation.JKT != "" || scheme == "DPoP" {
		if s.o.DPoP == nil {
			return &identity.Error{Code: identity.CodeInvalidToken, Reason: "dpop_not_supported", Detail: "DPoP-bound tokens are not accepted here."}
		}
		if scheme != "DPoP" {
			// RFC 9449 §7.1: a DPoP-bound token must use the DPoP scheme.
			return &identity.Error{Code: identity.CodeInvalidToken, Reason: "dpop_scheme_required", Detail: "Send the token with the DPoP authorization scheme and a DPoP proof."}
		}
		jkt, err := s.o.DPoP.Verify(r, token)
		if err != nil {
			return err
		}
		if err := fapi.CheckDPoPBinding(id, jkt); err != nil {
			return err
		}
	}
	return nil
}

// request extracts what the providers may look at.
func (s *Stage) request(x *pipeline.Exchange) *identity.Request {
	r := x.Request
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	ir := &identity.Request{
		Method: r.Method,
		URL:    scheme + "://" + r.Host + r.URL.EscapedPath(),
		Header: r.Header,
	}
	if s.needQuery {
		ir.Query = r.URL.Query()
	}
	if r.TLS != nil {
		ir.PeerCertificates = r.TLS.PeerCertificates
	}
	return ir
}

func missing(id *identity.Identity, scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		if !id.HasScope(sc) {
			out = append(out, sc)
		}
	}
	return out
}

// fail renders an authentication error: 401 with WWW-Authenticate, or 403
// for insufficient_scope (RFC 6750 §3.1).
func (s *Stage) fail(err error, scopes []string) pipeline.Decision {
	var ie *identity.Error
	if !errors.As(err, &ie) {
		ie = &identity.Error{Code: identity.CodeInvalidToken, Reason: "invalid_token", Detail: "The credentials are not valid."}
	}
	status := http.StatusUnauthorized
	if ie.Code == identity.CodeInsufficientScope {
		status = http.StatusForbidden
	}
	if ie.Reason == "dpop_replay_cache_full" {
		// The gateway is saturated, not the client wrong: a new proof
		// would fail the same way until entries expire.
		return pipeline.Decision{Action: pipeline.Stop, Status: http.StatusServiceUnavailable, Reason: ie.Reason,
			Detail: "The gateway cannot accept more DPoP proofs right now; retry shortly.", Headers: http.Header{"Retry-After": {retryAfterUnavailable}}}
	}
	if ie.Code == identity.CodeInvalidRequest {
		status = http.StatusBadRequest
	}
	detail := ie.Detail
	if detail == "" {
		detail = "The credentials are not valid."
	}
	return pipeline.Decision{
		Action:  pipeline.Stop,
		Status:  status,
		Reason:  ie.Reason,
		Detail:  detail,
		Headers: http.Header{"Www-Authenticate": s.challenges(ie, scopes)},
	}
}

// challenges builds the WWW-Authenticate values: a Bearer challenge, and a
// DPoP one when DPoP is accepted.
func (s *Stage) challenges(ie *identity.Error, scopes []string) []string {
	params := func(code string) string {
		v := `realm="` + quoteSafe(s.realm) + `"`
		if code != "" {
			v += `, error="` + code + `"`
			if ie.Detail != "" {
				v += `, error_description="` + quoteSafe(ie.Detail) + `"`
			}
		}
		if len(scopes) > 0 {
			v += `, scope="` + quoteSafe(strings.Join(scopes, " ")) + `"`
		}
		return v
	}
	if ie.Code == identity.CodeInvalidDPoPProof {
		return []string{"DPoP " + params(ie.Code) + `, algs="` + s.dpopAlgs + `"`}
	}
	out := []string{"Bearer " + params(ie.Code)}
	if s.o.DPoP != nil && s.dpopAlgs != "" {
		out = append(out, "DPoP "+params(ie.Code)+`, algs="`+s.dpopAlgs+`"`)
	}
	return out
}

// quoteSafe keeps a value inside an RFC 9110 quoted-string.
func quoteSafe(v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			continue
		}
		b = append(b, c)
	}
	return string(b)
}
