package importer

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// Credential limits.
const (
	// maxJWTPayloadBytes bounds the encoded JWT payload decoded for its
	// subject; real tokens are a few hundred bytes, and a larger payload is
	// still reported as a JWT, without a subject.
	maxJWTPayloadBytes = 8 << 10
	// maxBasicBytes bounds the encoded Basic credentials decoded for the
	// user name.
	maxBasicBytes = 4 << 10
)

// credentials is the authentication a request carried: its type and the
// hash of its subject. The credentials themselves are never kept.
type credentials struct {
	auth, subject string
}

// fromAuthorization classifies an Authorization header value: Bearer with
// a JWT shape is a JWT (subject from its unverified "sub" claim), another
// Bearer token is opaque (what introspection validates), Basic and Digest
// are basic, any other scheme is an API key. ok is false for an empty
// value.
func fromAuthorization(v string) (c credentials, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return c, false
	}
	scheme, cred, _ := strings.Cut(v, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "bearer":
		return fromBearer(cred), true
	case "basic":
		return credentials{auth: event.AuthBasic, subject: basicSubject(cred)}, true
	case "digest":
		return credentials{auth: event.AuthBasic}, true
	}
	if cred == "" && jwtShape(scheme) { // a bare JWT, no scheme
		return fromBearer(scheme), true
	}
	return credentials{auth: event.AuthAPIKey}, true
}

// fromBearer classifies a bearer token.
func fromBearer(tok string) credentials {
	if !jwtShape(tok) {
		return credentials{auth: event.AuthIntrospection}
	}
	return credentials{auth: event.AuthJWT, subject: jwtSubject(tok)}
}

// fromQuery finds credentials in query parameters: an RFC 6750
// access_token, or an API key parameter.
func fromQuery(pairs []pair) (c credentials, ok bool) {
	for _, p := range pairs {
		if strings.EqualFold(p.name, "access_token") && p.value != "" {
			return fromBearer(p.value), true
		}
	}
	for _, p := range pairs {
		if apiKeyName(p.name) && p.value != "" {
			return credentials{auth: event.AuthAPIKey}, true
		}
	}
	return c, false
}

// apiKeyName reports whether a header or query parameter name carries an
// API key: X-API-Key, api-key, apikey, api_key and the like.
func apiKeyName(name string) bool {
	if len(name) > 16 {
		return false
	}
	var buf [16]byte
	n := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '-' || c == '_':
		case 'A' <= c && c <= 'Z':
			buf[n] = c + 'a' - 'A'
			n++
		default:
			buf[n] = c
			n++
		}
	}
	norm := string(buf[:n])
	return norm == "apikey" || norm == "xapikey"
}

// jwtShape reports whether tok is three base64url parts, the first two
// non-empty (the signature is empty for "alg":"none").
func jwtShape(tok string) bool {
	parts := 0
	partLen := 0
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c == '.':
			if parts < 2 && partLen == 0 {
				return false
			}
			parts++
			partLen = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '=':
			partLen++
		default:
			return false
		}
	}
	return parts == 2
}

// jwtSubject is the hash of a JWT's unverified "sub" claim, or "" when
// there is none. The token is not verified: an import describes traffic
// that was already accepted or refused, it authenticates nothing.
func jwtSubject(tok string) string {
	_, rest, _ := strings.Cut(tok, ".")
	payload, _, _ := strings.Cut(rest, ".")
	payload = strings.TrimRight(payload, "=")
	if len(payload) > maxJWTPayloadBytes {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return ""
	}
	var claims struct {
		Sub json.RawMessage `json:"sub"`
	}
	if json.Unmarshal(b, &claims) != nil || len(claims.Sub) == 0 {
		return ""
	}
	var sub string
	if json.Unmarshal(claims.Sub, &sub) != nil {
		var n json.Number
		if json.Unmarshal(claims.Sub, &n) != nil {
			return ""
		}
		sub = n.String()
	}
	if sub == "" {
		return ""
	}
	return hashValue(sub)
}

// basicSubject is the hash of the user name of Basic credentials, or "".
// The password is never looked at beyond the separator.
func basicSubject(cred string) string {
	if len(cred) > maxBasicBytes {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(cred); err != nil {
			return ""
		}
	}
	user, _, ok := strings.Cut(string(b), ":")
	if !ok || user == "" {
		return ""
	}
	return hashValue(user)
}

// userSubject is the hash of a logged $remote_user, or "" for "-".
func userSubject(user string) string {
	if user == "" || user == "-" {
		return ""
	}
	return hashValue(user)
}
