package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

// Reasons recorded in the audit log.
const (
	ReasonInactive        = "token_inactive"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not_yet_valid"
	ReasonWrongIssuer     = "wrong_issuer"
	ReasonWrongAudience   = "wrong_audience"
	ReasonNoSubject       = "no_subject"
	ReasonTokenTooLarge   = "token_too_large"
	ReasonAuthMultiple    = "authorization_multiple"
	ReasonAuthTooLarge    = "authorization_too_large"
	ReasonMalformedHeader = "authorization_malformed"
)

// response is a parsed RFC 7662 §2.2 introspection response.
type response struct {
	active bool
	claims map[string]any
	// exp and nbf are zero when absent.
	exp, nbf time.Time
}

// errBadResponse marks a response that is not a valid RFC 7662 answer: the
// endpoint is treated as failed (fail closed, not cached).
var errBadResponse = errors.New("invalid introspection response")

// parseResponse parses an introspection response body. It must be one JSON
// object with a boolean "active"; exp and nbf, when present, must be
// numbers. Anything else is errBadResponse.
func parseResponse(body []byte) (response, error) {
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&claims); err != nil {
		return response{}, fmt.Errorf("%w: %w", errBadResponse, err)
	}
	if claims == nil {
		return response{}, fmt.Errorf("%w: not a JSON object", errBadResponse)
	}
	if _, err := dec.Token(); err == nil {
		return response{}, fmt.Errorf("%w: data after the JSON object", errBadResponse)
	}
	active, ok := claims["active"].(bool)
	if !ok {
		return response{}, fmt.Errorf("%w: \"active\" is missing or not a boolean", errBadResponse)
	}
	r := response{active: active, claims: claims}
	if !active {
		// RFC 7662 §2.2: an inactive response should carry nothing else; the
		// rest is ignored.
		return r, nil
	}
	var err error
	if r.exp, err = numericDate(claims, "exp"); err != nil {
		return response{}, err
	}
	if r.nbf, err = numericDate(claims, "nbf"); err != nil {
		return response{}, err
	}
	return r, nil
}

// maxNumericDate bounds exp/nbf to year 9999, so that time arithmetic on
// them cannot overflow.
const maxNumericDate = 253402300799

func numericDate(claims map[string]any, name string) (time.Time, error) {
	v, present := claims[name]
	if !present {
		return time.Time{}, nil
	}
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%w: %q is not a NumericDate", errBadResponse, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// verifier checks an active response against the provider configuration
// and maps it to an identity.
type verifier struct {
	issuer    string
	audiences []string
	claims    config.ClaimMapping
}

// verify returns the identity of an active response, or the *identity.Error
// that refuses it. r.claims becomes the identity's Claims: it must not be
// modified afterwards.
func (v *verifier) verify(r response, now time.Time) (*identity.Identity, *identity.Error) {
	if !r.active {
		return nil, identity.Fail(ReasonInactive, "the access token is not active", nil)
	}
	if !r.exp.IsZero() && !now.Before(r.exp) {
		return nil, identity.Fail(ReasonExpired, "the access token expired", nil)
	}
	if !r.nbf.IsZero() && now.Before(r.nbf) {
		return nil, identity.Fail(ReasonNotYetValid, "the access token is not yet valid", nil)
	}
	if v.issuer != "" {
		if iss, _ := r.claims["iss"].(string); iss != v.issuer {
			return nil, identity.Fail(ReasonWrongIssuer, "the access token has the wrong issuer", nil)
		}
	}
	if len(v.audiences) > 0 && !anyIn(strs(r.claims["aud"], false), v.audiences) {
		return nil, identity.Fail(ReasonWrongAudience, "the access token is not meant for this API", nil)
	}
	sub := ""
	for _, name := range []string{v.claims.Subject, "username", "client_id"} {
		if s, ok := lookup(r.claims, name).(string); ok && s != "" {
			sub = s
			break
		}
	}
	if sub == "" {
		return nil, identity.Fail(ReasonNoSubject, "the access token names no subject", nil)
	}
	id := &identity.Identity{
		Subject: sub,
		Kind:    identity.KindIntrospection,
		Claims:  r.claims,
		Scopes:  strs(lookup(r.claims, v.claims.Scopes), true),
		Roles:   strs(lookup(r.claims, v.claims.Roles), true),
		Expiry:  r.exp,
	}
	id.Tenant, _ = lookup(r.claims, v.claims.Tenant).(string)
	if id.ClientID, _ = r.claims["client_id"].(string); id.ClientID == "" {
		id.ClientID, _ = r.claims["azp"].(string)
	}
	if cnf, ok := r.claims["cnf"].(map[string]any); ok {
		id.Confirmation.X5tS256, _ = cnf["x5t#S256"].(string)
		id.Confirmation.JKT, _ = cnf["jkt"].(string)
	}
	return id, nil
}

// lookup finds a claim by its name, or else by a dotted path into nested
// objects (realm_access.roles). The literal name is tried first because
// claim names may contain dots (https://bank.example/tenant).
func lookup(claims map[string]any, name string) any {
	if name == "" {
		return nil
	}
	if v, ok := claims[name]; ok {
		return v
	}
	if !strings.Contains(name, ".") {
		return nil
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// strs reads a claim that is a string or an array of strings. With split, a
// string is a space-delimited list (RFC 7662 scope); otherwise it is one
// value (RFC 7519 aud). Non-string array members are ignored.
func strs(v any, split bool) []string {
	switch t := v.(type) {
	case string:
		if split {
			return strings.Fields(t)
		}
		if t == "" {
			return nil
		}
		return []string{t}
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func anyIn(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}
