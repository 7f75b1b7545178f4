package dashboard

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// mask replaces a secret value.
const mask = "***"

// secretWords make a mapping key sensitive wherever they appear in it:
// admin.token, client_secret, hmac_secret, password, ...
var secretWords = []string{"secret", "password", "passwd", "token", "credential"}

// digestKeys hold key digests (api_key keys' sha256): not the key, but a
// digest of a low-entropy key can be brute-forced, so it is not shown.
var digestKeys = []string{"sha256", "digest"}

// limitPrefixes and limitSuffixes mark keys whose numeric values are
// limits, not secrets (max_token_bytes).
var (
	limitPrefixes = []string{"max_", "min_"}
	limitSuffixes = []string{"_bytes", "_size", "_ttl", "_timeout", "_interval", "_count", "_len"}
)

// tokenSchemes are URL schemes whose user part alone is a credential
// (nats://TOKEN@host).
var tokenSchemes = []string{"nats", "tls", "ws", "wss"}

// secretParams are query parameters of a URL holding credentials
// (postgres://host/db?password=..., sqlite://file?_auth_pass=...).
var secretParams = []string{"password", "pass", "passwd", "secret", "token", "auth", "key", "sslpassword", "access_key"}

// RedactedYAML marshals v (the running config, or any value) to YAML with
// its secrets masked; see RedactNode for what counts as a secret.
func RedactedYAML(v any) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	RedactNode(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// RedactNode masks the secrets of a YAML node tree in place:
//
//   - every scalar under a key containing secret, password, passwd, token
//     or credential (admin.token, client_secret, hmac_secret), except
//     booleans, nulls, empty strings and numbers under limit keys
//     (max_token_bytes);
//   - every scalar under a key named sha256 or digest (API key digests);
//   - the password of any URL with credentials (user:pass@ becomes
//     user:***@), the whole user part of a token URL (nats://TOKEN@), and
//     credential query parameters (?password=...).
func RedactNode(n *yaml.Node) {
	redactNode(n, 0)
}

// maxDepth bounds recursion over a hostile or cyclic (aliased) tree.
const maxDepth = 64

func redactNode(n *yaml.Node, depth int) {
	if n == nil || depth > maxDepth {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			redactNode(c, depth+1)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := strings.ToLower(k.Value)
			switch {
			case sensitiveKey(key), isDigestKey(key):
				maskAll(v, isLimitKey(key), depth+1)
			default:
				redactNode(v, depth+1)
			}
		}
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Tag == "" {
			if r := RedactURL(n.Value); r != n.Value {
				n.Value = r
			}
		}
	case yaml.AliasNode:
		// An alias repeats an anchored node, which is redacted where it
		// is defined; drop the reference rather than follow it.
		n.Kind, n.Tag, n.Value, n.Alias = yaml.ScalarNode, "!!str", mask, nil
	}
}

func sensitiveKey(key string) bool {
	for _, w := range secretWords {
		if strings.Contains(key, w) {
			return true
		}
	}
	return false
}

func isDigestKey(key string) bool {
	for _, w := range digestKeys {
		if key == w {
			return true
		}
	}
	return false
}

func isLimitKey(key string) bool {
	for _, p := range limitPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	for _, s := range limitSuffixes {
		if strings.HasSuffix(key, s) {
			return true
		}
	}
	return false
}

// maskAll masks every secret-bearing scalar below n.
func maskAll(n *yaml.Node, limit bool, depth int) {
	if n == nil || depth > maxDepth {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!bool", "!!null":
			return
		case "!!int", "!!float":
			if limit {
				return
			}
		}
		if n.Value == "" {
			return
		}
		n.Tag, n.Value, n.Style = "!!str", mask, 0
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			maskAll(n.Content[i], limit, depth+1)
		}
	case yaml.AliasNode:
		n.Kind, n.Tag, n.Value, n.Alias = yaml.ScalarNode, "!!str", mask, nil
	default:
		for _, c := range n.Content {
			maskAll(c, limit, depth+1)
		}
	}
}

// RedactURL masks the credentials of a URL-shaped string: the password
// of its user info, the user part alone for token schemes (nats://TOKEN@),
// and credential query parameters. Other strings are returned unchanged.
// It works on the text (not net/url) so that a malformed URL is redacted
// too and nothing else is re-encoded.
func RedactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, " /@") {
		return s
	}
	end := strings.IndexAny(rest, "/?#")
	authority, tail := rest, ""
	if end >= 0 {
		authority, tail = rest[:end], rest[end:]
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		user, host := authority[:at], authority[at+1:]
		switch name, _, hasPass := strings.Cut(user, ":"); {
		case hasPass:
			user = name + ":" + mask
		case isTokenScheme(scheme) && user != "":
			user = mask
		}
		authority = user + "@" + host
	}
	return scheme + "://" + authority + redactQuery(tail)
}

func isTokenScheme(scheme string) bool {
	s := strings.ToLower(scheme)
	for _, t := range tokenSchemes {
		if s == t || strings.HasPrefix(s, t+"+") {
			return true
		}
	}
	return false
}

// redactQuery masks credential parameters in the "?..." part of tail.
func redactQuery(tail string) string {
	q := strings.IndexByte(tail, '?')
	if q < 0 {
		return tail
	}
	path, query := tail[:q], tail[q+1:]
	frag := ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query, frag = query[:h], query[h:]
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if ok && secretParam(strings.ToLower(k)) {
			parts[i] = k + "=" + mask
		}
	}
	return path + "?" + strings.Join(parts, "&") + frag
}

func secretParam(k string) bool {
	for _, p := range secretParams {
		if k == p || strings.HasSuffix(k, "_"+p) || strings.HasSuffix(k, "-"+p) {
			return true
		}
	}
	return sensitiveKey(k)
}
