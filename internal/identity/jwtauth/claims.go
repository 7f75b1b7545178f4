package jwtauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// maxNumericDate is 9999-12-31T23:59:59Z: a later exp/nbf/iat is nonsense
// (and would overflow time arithmetic).
const maxNumericDate = 253402300799

// identity checks the verified payload's claims, in the order iss, aud,
// exp, nbf, iat, required claims, subject, and maps them to an Identity.
// An absent iss, aud or exp is missing_claim; a present wrong one is
// wrong_issuer / wrong_audience / expired.
func (p *Provider) identity(payload []byte, now time.Time) (*identity.Identity, error) {
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		if err == nil {
			err = errors.New("not a JSON object")
		}
		return nil, fail(reasonMalformed, fmt.Errorf("claims: %w", err))
	}
	iss, ok := claims["iss"]
	if !ok || iss == nil {
		return nil, fail(reasonMissingClaim, errors.New("iss missing"))
	}
	if s, _ := iss.(string); s != p.cfg.Issuer {
		return nil, fail(reasonWrongIssuer, fmt.Errorf("iss %.128q is not %q", fmt.Sprint(iss), p.cfg.Issuer))
	}
	aud, ok := claims["aud"]
	if !ok || aud == nil {
		return nil, fail(reasonMissingClaim, errors.New("aud missing"))
	}
	if !p.audienceOK(aud) {
		return nil, fail(reasonWrongAudience, fmt.Errorf("aud %.128s is none of %q", fmt.Sprint(aud), p.cfg.Audiences))
	}
	exp, present, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return nil, fail(reasonInvalidClaim, err)
	case !present:
		return nil, fail(reasonMissingClaim, errors.New("exp missing"))
	case !now.Before(exp.Add(p.leeway)):
		return nil, fail(reasonExpired, fmt.Errorf("expired at %s", exp.UTC().Format(time.RFC3339)))
	}
	nbf, present, err := numericDate(claims, "nbf")
	switch {
	case err != nil:
		return nil, fail(reasonInvalidClaim, err)
	case present && nbf.After(now.Add(p.leeway)):
		return nil, fail(reasonNotYetValid, fmt.Errorf("not valid before %s", nbf.UTC().Format(time.RFC3339)))
	}
	iat, present, err := numericDate(claims, "iat")
	switch {
	case err != nil:
		return nil, fail(reasonInvalidClaim, err)
	case present && iat.After(now.Add(p.leeway)):
		return nil, fail(reasonIssuedFuture, fmt.Errorf("issued at %s, in the future", iat.UTC().Format(time.RFC3339)))
	}
	for _, c := range p.cfg.RequiredClaims {
		if v, ok := claims[c]; !ok || v == nil {
			return nil, fail(reasonMissingClaim, fmt.Errorf("required claim %q missing", c))
		}
	}
	m := p.cfg.Claims
	subClaim := orDefault(m.Subject, "sub")
	sub, _ := claims[subClaim].(string)
	if sub == "" {
		return nil, fail(reasonMissingClaim, fmt.Errorf("subject claim %q missing or empty", subClaim))
	}
	id := &identity.Identity{
		Subject:  sub,
		Provider: p.name,
		Kind:     identity.KindJWT,
		Claims:   claims,
		Expiry:   exp,
	}
	scopeClaim := orDefault(m.Scopes, "scope")
	sv, ok := claims[scopeClaim]
	if !ok && scopeClaim == "scope" {
		sv = claims["scp"]
	}
	id.Scopes = stringList(sv)
	id.Roles = stringList(lookupPath(claims, orDefault(m.Roles, "roles")))
	id.Tenant, _ = claims[orDefault(m.Tenant, "tenant")].(string)
	if id.ClientID, _ = claims["azp"].(string); id.ClientID == "" {
		id.ClientID, _ = claims["client_id"].(string)
	}
	if cnf, ok := claims["cnf"].(map[string]any); ok {
		id.Confirmation.X5tS256, _ = cnf["x5t#S256"].(string)
		id.Confirmation.JKT, _ = cnf["jkt"].(string)
	}
	return id, nil
}

func (p *Provider) audienceOK(aud any) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(p.cfg.Audiences, a)
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && slices.Contains(p.cfg.Audiences, s) {
				return true
			}
		}
	}
	return false
}

// numericDate reads an RFC 7519 NumericDate (seconds, possibly
// fractional). present is false when the claim is absent or null.
func numericDate(claims map[string]any, name string) (t time.Time, present bool, err error) {
	v, ok := claims[name]
	if !ok || v == nil {
		return t, false, nil
	}
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || f > maxNumericDate || f < -maxNumericDate {
		return t, true, fmt.Errorf("%s is not a NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// stringList reads a space-delimited string or an array of strings (other
// array members are ignored).
func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// lookupPath returns the claim named path, or, when there is none, follows
// path as dot-separated object members (realm_access.roles). The literal
// name wins so that namespaced claims such as
// "https://bank.example/roles" work.
func lookupPath(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
