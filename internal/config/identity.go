package config

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// IdentityProvider is one named authentication method. Exactly one of
// jwt, introspection, api_key and mtls is set.
type IdentityProvider struct {
	Name          string                 `yaml:"name"`
	JWT           *JWTProvider           `yaml:"jwt"`
	Introspection *IntrospectionProvider `yaml:"introspection"`
	APIKey        *APIKeyProvider        `yaml:"api_key"`
	MTLS          *MTLSProvider          `yaml:"mtls"`
}

// ClaimMapping says which claims carry the identity's parts. Roles may be
// a dotted path (Keycloak: realm_access.roles).
type ClaimMapping struct {
	Subject string `yaml:"subject"`
	Scopes  string `yaml:"scopes"`
	Roles   string `yaml:"roles"`
	Tenant  string `yaml:"tenant"`
}

// JWTProvider verifies signed JWT access tokens.
type JWTProvider struct {
	Issuer     string   `yaml:"issuer"`
	Audiences  []string `yaml:"audiences"`
	JWKSURL    string   `yaml:"jwks_url"`
	JWKSFile   string   `yaml:"jwks_file"`
	Algorithms []string `yaml:"algorithms"`
	// HMACSecret enables HS256/384/512 with a shared secret; never together
	// with public keys in one provider.
	HMACSecret     string       `yaml:"hmac_secret"`
	Leeway         Duration     `yaml:"leeway"`
	RequiredClaims []string     `yaml:"required_claims"`
	MaxTokenBytes  ByteSize     `yaml:"max_token_bytes"`
	Claims         ClaimMapping `yaml:"claims"`
	// RefreshInterval is how often the JWKS is fetched when the endpoint
	// sends no Cache-Control max-age.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// MinRefreshInterval bounds fetches caused by unknown key ids, and the
	// shortest max-age honoured.
	MinRefreshInterval Duration `yaml:"min_refresh_interval"`
	FetchTimeout       Duration `yaml:"fetch_timeout"`
	// CacheSize bounds the verified-token cache (entries).
	CacheSize int `yaml:"cache_size"`
	// CAFile verifies the JWKS endpoint's certificate (default: system roots).
	CAFile string `yaml:"ca_file"`
}

// IntrospectionProvider checks opaque tokens with an RFC 7662 endpoint.
type IntrospectionProvider struct {
	URL          string `yaml:"url"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// AuthMethod is client_secret_basic (default) or client_secret_post.
	AuthMethod       string       `yaml:"auth_method"`
	Timeout          Duration     `yaml:"timeout"`
	CacheTTL         Duration     `yaml:"cache_ttl"`
	NegativeCacheTTL Duration     `yaml:"negative_cache_ttl"`
	CacheSize        int          `yaml:"cache_size"`
	Issuer           string       `yaml:"issuer"`
	Audiences        []string     `yaml:"audiences"`
	Claims           ClaimMapping `yaml:"claims"`
	CAFile           string       `yaml:"ca_file"`
}

// APIKeyProvider accepts API keys stored as SHA-256 digests.
type APIKeyProvider struct {
	Header string `yaml:"header"`
	// Query names a query parameter that may carry the key instead. Keys
	// in URLs end up in logs and browser history: the inventory flags it.
	Query string   `yaml:"query"`
	Keys  []APIKey `yaml:"keys"`
}

// APIKey is one key: only its SHA-256 digest is in the config.
type APIKey struct {
	ID     string   `yaml:"id"`
	SHA256 string   `yaml:"sha256"`
	Scopes []string `yaml:"scopes"`
	Roles  []string `yaml:"roles"`
	Tenant string   `yaml:"tenant"`
}

// MTLSProvider takes the identity from the verified client certificate.
type MTLSProvider struct {
	// Subject picks the identity's subject: spiffe (default: the SPIFFE ID,
	// else the certificate subject), dns (first DNS SAN), uri (first URI
	// SAN) or dn (the subject distinguished name).
	Subject string `yaml:"subject"`
	// TrustDomains, when set, only accepts SPIFFE IDs in these trust domains.
	TrustDomains []string `yaml:"trust_domains"`
}

// FAPI are the Financial-grade API token binding checks of an API.
type FAPI struct {
	// CertificateBoundTokens requires cnf."x5t#S256" to match the client
	// certificate of the connection (RFC 8705).
	CertificateBoundTokens bool `yaml:"certificate_bound_tokens"`
	// DPoP requires a DPoP proof bound to the token's cnf.jkt (RFC 9449).
	DPoP bool `yaml:"dpop"`
	// DPoPMaxAge is the accepted age (and clock skew) of a proof's iat.
	DPoPMaxAge Duration `yaml:"dpop_max_age"`
	// DPoPAlgorithms are the accepted proof signature algorithms.
	DPoPAlgorithms []string `yaml:"dpop_algorithms"`
}

// IdentityHeaders are request headers that carry the verified identity to
// the upstream. Each is stripped from the client's request first.
type IdentityHeaders struct {
	Subject  string `yaml:"subject"`
	Scopes   string `yaml:"scopes"`
	Roles    string `yaml:"roles"`
	Tenant   string `yaml:"tenant"`
	Provider string `yaml:"provider"`
}

// Identity defaults.
const (
	DefaultJWTLeeway = 30 * time.Second
	// DefaultMaxTokenBytes: real access tokens are 1-3 KiB; 8 KiB leaves room
	// for rich claims and stops megabyte tokens from costing parse time.
	DefaultMaxTokenBytes = 8 << 10
	// DefaultJWKSRefresh applies when the JWKS response has no max-age.
	DefaultJWKSRefresh = 5 * time.Minute
	// DefaultJWKSMinRefresh bounds unknown-kid refetches: at most one per 30s.
	DefaultJWKSMinRefresh = 30 * time.Second
	DefaultFetchTimeout   = 5 * time.Second
	// DefaultTokenCache entries of verified tokens (about 2 KiB each).
	DefaultTokenCache         = 10000
	DefaultIntrospectTimeout  = 2 * time.Second
	DefaultIntrospectCacheTTL = 5 * time.Minute
	DefaultIntrospectNegTTL   = 10 * time.Second
	DefaultAPIKeyHeader       = "X-API-Key"
	DefaultDPoPMaxAge         = 60 * time.Second
	DefaultSubjectClaim       = "sub"
	DefaultScopesClaim        = "scope"
	DefaultRolesClaim         = "roles"
	DefaultTenantClaim        = "tenant"
	DefaultIntrospectAuth     = "client_secret_basic"
	DefaultMTLSSubject        = "spiffe"
	maxIdentityProviders      = 64
	minHMACSecretBytes        = 32
)

// AsymmetricAlgorithms are the public-key JWS algorithms Bulwark accepts.
var AsymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// HMACAlgorithms need a configured shared secret.
var HMACAlgorithms = []string{"HS256", "HS384", "HS512"}

func (m *ClaimMapping) defaults() {
	if m.Subject == "" {
		m.Subject = DefaultSubjectClaim
	}
	if m.Scopes == "" {
		m.Scopes = DefaultScopesClaim
	}
	if m.Roles == "" {
		m.Roles = DefaultRolesClaim
	}
	if m.Tenant == "" {
		m.Tenant = DefaultTenantClaim
	}
}

func (c *Config) identityDefaults() {
	for i := range c.Identity {
		p := &c.Identity[i]
		if j := p.JWT; j != nil {
			setDur(&j.Leeway, DefaultJWTLeeway)
			setDur(&j.RefreshInterval, DefaultJWKSRefresh)
			setDur(&j.MinRefreshInterval, DefaultJWKSMinRefresh)
			setDur(&j.FetchTimeout, DefaultFetchTimeout)
			if j.MaxTokenBytes == 0 {
				j.MaxTokenBytes = DefaultMaxTokenBytes
			}
			if j.CacheSize == 0 {
				j.CacheSize = DefaultTokenCache
			}
			if len(j.Algorithms) == 0 && j.HMACSecret == "" {
				j.Algorithms = []string{"RS256", "PS256", "ES256"}
			}
			j.Claims.defaults()
		}
		if in := p.Introspection; in != nil {
			setDur(&in.Timeout, DefaultIntrospectTimeout)
			setDur(&in.CacheTTL, DefaultIntrospectCacheTTL)
			setDur(&in.NegativeCacheTTL, DefaultIntrospectNegTTL)
			if in.CacheSize == 0 {
				in.CacheSize = DefaultTokenCache
			}
			if in.AuthMethod == "" {
				in.AuthMethod = DefaultIntrospectAuth
			}
			in.Claims.defaults()
		}
		if k := p.APIKey; k != nil && k.Header == "" && k.Query == "" {
			k.Header = DefaultAPIKeyHeader
		}
		if m := p.MTLS; m != nil && m.Subject == "" {
			m.Subject = DefaultMTLSSubject
		}
	}
	for i := range c.APIs {
		if f := c.APIs[i].FAPI; f != nil {
			setDur(&f.DPoPMaxAge, DefaultDPoPMaxAge)
			if len(f.DPoPAlgorithms) == 0 {
				f.DPoPAlgorithms = []string{"ES256", "PS256", "EdDSA"}
			}
		}
	}
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (c *Config) validateIdentity(add, warn func(string, string, ...any)) {
	if len(c.Identity) > maxIdentityProviders {
		add("identity", "at most %d providers", maxIdentityProviders)
	}
	names := map[string]string{}
	for i, p := range c.Identity {
		path := fmt.Sprintf("identity[%d]", i)
		checkName(add, path+".name", "provider", p.Name, names)
		n := 0
		for _, set := range []bool{p.JWT != nil, p.Introspection != nil, p.APIKey != nil, p.MTLS != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			add(path, "exactly one of jwt, introspection, api_key, mtls is required, found %d", n)
		}
		if p.JWT != nil {
			validateJWT(add, warn, path+".jwt", p.JWT)
		}
		if p.Introspection != nil {
			validateIntrospection(add, path+".introspection", p.Introspection)
		}
		if p.APIKey != nil {
			validateAPIKeys(add, warn, path+".api_key", p.APIKey)
		}
		if p.MTLS != nil {
			switch p.MTLS.Subject {
			case "spiffe", "dns", "uri", "dn":
			default:
				add(path+".mtls.subject", "must be spiffe, dns, uri or dn, got %q", clip(p.MTLS.Subject))
			}
			for j, td := range p.MTLS.TrustDomains {
				if td == "" || strings.ContainsAny(td, "/:") {
					add(fmt.Sprintf("%s.mtls.trust_domains[%d]", path, j), "a trust domain is a bare name such as bank.example, got %q", clip(td))
				}
			}
		}
	}

	for i, a := range c.APIs {
		p := fmt.Sprintf("apis[%d]", i)
		hasMTLS := false
		for j, name := range a.Authenticate {
			ip, ok := names[name]
			if !ok {
				add(fmt.Sprintf("%s.authenticate[%d]", p, j), "no identity provider named %q", clip(name))
				continue
			}
			var idx int
			_, _ = fmt.Sscanf(ip, "identity[%d]", &idx)
			if c.Identity[idx].MTLS != nil {
				hasMTLS = true
			}
		}
		if len(a.Anonymous) > 0 && len(a.Authenticate) == 0 {
			add(p+".anonymous", "anonymous operations only make sense with authenticate")
		}
		for j, op := range a.Anonymous {
			if !validOperationKey(op) {
				add(fmt.Sprintf("%s.anonymous[%d]", p, j), "must be an operation such as \"GET /health\", got %q", clip(op))
			}
		}
		for scheme, provs := range a.SecuritySchemes {
			for j, name := range provs {
				if _, ok := names[name]; !ok {
					add(fmt.Sprintf("%s.security_schemes.%s[%d]", p, scheme, j), "no identity provider named %q", clip(name))
				}
			}
		}
		if len(a.SecuritySchemes) > 0 && a.Spec == "" {
			add(p+".security_schemes", "maps the spec's security schemes, but the API has no spec")
		}
		if f := a.FAPI; f != nil {
			if (f.CertificateBoundTokens || f.DPoP) && len(a.Authenticate) == 0 {
				add(p+".fapi", "token binding needs authenticate with a jwt or introspection provider")
			}
			if f.CertificateBoundTokens && !c.anyClientCerts() {
				add(p+".fapi.certificate_bound_tokens", "needs a listener with tls.client_auth optional or require, so that the client certificate is known")
			}
			if f.DPoPMaxAge <= 0 || f.DPoPMaxAge > Duration(10*time.Minute) {
				add(p+".fapi.dpop_max_age", "must be between 1s and 10m")
			}
			for j, alg := range f.DPoPAlgorithms {
				if !contains(AsymmetricAlgorithms, alg) {
					add(fmt.Sprintf("%s.fapi.dpop_algorithms[%d]", p, j), "must be one of %s, got %q", strings.Join(AsymmetricAlgorithms, ", "), clip(alg))
				}
			}
		}
		if hasMTLS && !c.anyClientCerts() {
			add(p+".authenticate", "an mtls provider needs a listener with tls.client_auth optional or require")
		}
		if h := a.IdentityHeaders; h != nil {
			if len(a.Authenticate) == 0 {
				add(p+".identity_headers", "identity headers need authenticate")
			}
			for _, f := range []struct{ key, v string }{{"subject", h.Subject}, {"scopes", h.Scopes}, {"roles", h.Roles}, {"tenant", h.Tenant}, {"provider", h.Provider}} {
				if f.v != "" && !validHeaderName(f.v) {
					add(p+".identity_headers."+f.key, "not a valid header name: %q", clip(f.v))
				}
			}
		}
	}
}

func (c *Config) anyClientCerts() bool {
	for _, l := range c.Listeners {
		if l.TLS != nil && (l.TLS.ClientAuth == "optional" || l.TLS.ClientAuth == "require") {
			return true
		}
	}
	return false
}

func validateJWT(add, warn func(string, string, ...any), p string, j *JWTProvider) {
	if j.Issuer == "" {
		add(p+".issuer", "required: the iss every token must carry")
	}
	if len(j.Audiences) == 0 {
		add(p+".audiences", "required: at least one aud a token must carry for this gateway")
	}
	hasHS, hasPK := false, false
	for k, alg := range j.Algorithms {
		switch {
		case contains(AsymmetricAlgorithms, alg):
			hasPK = true
		case contains(HMACAlgorithms, alg):
			hasHS = true
		case strings.EqualFold(alg, "none"):
			add(fmt.Sprintf("%s.algorithms[%d]", p, k), "\"none\" is never accepted")
		default:
			add(fmt.Sprintf("%s.algorithms[%d]", p, k), "unknown algorithm %q: use %s, or %s with hmac_secret", clip(alg), strings.Join(AsymmetricAlgorithms, ", "), strings.Join(HMACAlgorithms, ", "))
		}
	}
	switch {
	case hasHS && hasPK:
		add(p+".algorithms", "HMAC (HS*) and public-key algorithms cannot share a provider: that is how key-confusion attacks work; use two providers")
	case hasHS && j.HMACSecret == "":
		add(p+".hmac_secret", "required for HS256/384/512")
	case hasHS && len(j.HMACSecret) < minHMACSecretBytes:
		add(p+".hmac_secret", "too short: at least %d bytes", minHMACSecretBytes)
	case !hasHS && j.HMACSecret != "":
		add(p+".hmac_secret", "set, but algorithms lists no HS256/384/512")
	}
	if hasPK && j.JWKSURL == "" && j.JWKSFile == "" {
		add(p, "jwks_url or jwks_file is required for public-key algorithms")
	}
	if j.JWKSURL != "" && j.JWKSFile != "" {
		add(p+".jwks_file", "jwks_url and jwks_file are exclusive")
	}
	if hasHS && (j.JWKSURL != "" || j.JWKSFile != "") {
		add(p+".jwks_url", "an HMAC provider uses hmac_secret, not a JWKS")
	}
	if j.JWKSURL != "" {
		u, err := url.Parse(j.JWKSURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			add(p+".jwks_url", "must be an https:// URL, got %q", clip(j.JWKSURL))
		case u.Scheme == "http":
			warn(p+".jwks_url", "JWKS fetched over plain HTTP: keys can be substituted in transit; use https")
		}
	}
	if j.JWKSFile != "" {
		checkFile(add, p+".jwks_file", j.JWKSFile)
	}
	if j.CAFile != "" {
		checkFile(add, p+".ca_file", j.CAFile)
	}
	if j.Leeway < 0 || j.Leeway > Duration(5*time.Minute) {
		add(p+".leeway", "must be between 0s and 5m")
	}
	if j.MaxTokenBytes < 512 || j.MaxTokenBytes > 64<<10 {
		add(p+".max_token_bytes", "must be between 512 and 64KiB")
	}
	if j.MinRefreshInterval < Duration(time.Second) {
		add(p+".min_refresh_interval", "must be at least 1s (it protects the identity provider from refetch storms)")
	}
	if j.RefreshInterval < j.MinRefreshInterval {
		add(p+".refresh_interval", "must not be shorter than min_refresh_interval")
	}
	if j.FetchTimeout <= 0 {
		add(p+".fetch_timeout", "must be positive")
	}
	if j.CacheSize < 0 || j.CacheSize > 10_000_000 {
		add(p+".cache_size", "must be between 0 and 10000000")
	}
}

func validateIntrospection(add func(string, string, ...any), p string, in *IntrospectionProvider) {
	if u, err := url.Parse(in.URL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		add(p+".url", "must be the https:// URL of the introspection endpoint, got %q", clip(in.URL))
	}
	if in.ClientID == "" {
		add(p+".client_id", "required: the gateway authenticates to the endpoint (RFC 7662 §2.1)")
	}
	if in.ClientSecret == "" {
		add(p+".client_secret", "required (use ${ENV})")
	}
	if in.AuthMethod != "client_secret_basic" && in.AuthMethod != "client_secret_post" {
		add(p+".auth_method", "must be client_secret_basic or client_secret_post")
	}
	if in.Timeout <= 0 || in.Timeout > Duration(30*time.Second) {
		add(p+".timeout", "must be between 1ms and 30s")
	}
	if in.CacheTTL < 0 {
		add(p+".cache_ttl", "must not be negative")
	}
	if in.NegativeCacheTTL < 0 || in.NegativeCacheTTL > Duration(5*time.Minute) {
		add(p+".negative_cache_ttl", "must be between 0s and 5m")
	}
	if in.CAFile != "" {
		checkFile(add, p+".ca_file", in.CAFile)
	}
}

func validateAPIKeys(add, warn func(string, string, ...any), p string, k *APIKeyProvider) {
	if k.Header != "" && !validHeaderName(k.Header) {
		add(p+".header", "not a valid header name: %q", clip(k.Header))
	}
	if k.Query != "" {
		warn(p+".query", "API keys in query strings end up in access logs and browser history")
	}
	if len(k.Keys) == 0 {
		add(p+".keys", "at least one key is required")
	}
	ids := map[string]bool{}
	digests := map[string]bool{}
	for i, key := range k.Keys {
		kp := fmt.Sprintf("%s.keys[%d]", p, i)
		if key.ID == "" {
			add(kp+".id", "required")
		} else if ids[key.ID] {
			add(kp+".id", "duplicate key id %q", clip(key.ID))
		}
		ids[key.ID] = true
		if !hexSHA256.MatchString(key.SHA256) {
			add(kp+".sha256", "must be the 64-hex-digit SHA-256 of the key (printf %%s KEY | sha256sum), never the key itself")
			continue
		}
		d := strings.ToLower(key.SHA256)
		if digests[d] {
			add(kp+".sha256", "the same key digest is listed twice")
		}
		digests[d] = true
		if _, err := hex.DecodeString(d); err != nil {
			add(kp+".sha256", "not hex")
		}
	}
}

func validOperationKey(s string) bool {
	method, path, ok := strings.Cut(s, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		return false
	}
	switch method {
	case "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE":
		return true
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
