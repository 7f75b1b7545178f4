package dashboard

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/bulwarkapi/bulwark/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Secrets planted in testConfig: none may appear in a redacted config.
const (
	secretAdminToken   = "admin-token-SECRET-5f1e2d3c4b5a69788"
	secretDigest       = "31c3934825a94891e59032d2ca85c953b9ebc6ce02274fd096d1b671730d1a12"
	secretClientSecret = "introspection-SECRET-a1b2c3"
	secretHMAC         = "hmac-SECRET-shared-key-0011223344"
	secretPseudonym    = "pseudonym-SECRET-0123456789abcdef0123"
	secretHECToken     = "hec-SECRET-token-7c1e"
	secretRedisPass    = "redisSECRETpass"
	secretNATSToken    = "natsSECRETtoken"
	secretStorePass    = "pgSECRETpass"
	secretQueryPass    = "querySECRETpass"
)

// testConfig is a config holding every kind of secret.
func testConfig() *config.Config {
	return &config.Config{
		Listeners: []config.Listener{{Addr: ":8443", TLS: &config.TLS{CertFile: "tls.crt", KeyFile: "tls.key", MinVersion: "1.2"}}},
		Admin:     config.Admin{Addr: "127.0.0.1:9901", Token: secretAdminToken},
		Limits:    config.Limits{MaxHeaderBytes: 16384, MaxBodyBytes: 1 << 20, MaxConnsPerIP: 256},
		Store:     config.Store{URL: "postgres://bulwark:" + secretStorePass + "@db.internal:5432/bulwark?sslmode=verify-full&password=" + secretQueryPass},
		Cluster: config.Cluster{
			RedisURL: "redis://default:" + secretRedisPass + "@redis.internal:6379/0",
			NATSURL:  "nats://" + secretNATSToken + "@nats.internal:4222",
		},
		Privacy: config.Privacy{PseudonymSecret: secretPseudonym},
		Detect:  config.Detect{FindingsWebhook: &config.FindingsWebhook{URL: "https://siem.bank.example/hec", Token: secretHECToken, Scheme: "Splunk"}},
		Identity: []config.IdentityProvider{
			{Name: "bank-idp", JWT: &config.JWTProvider{
				Issuer: "https://idp.bank.example", Audiences: []string{"accounts-api"},
				JWKSURL: "https://idp.bank.example/jwks.json", Algorithms: []string{"RS256"}, MaxTokenBytes: 8192,
			}},
			{Name: "legacy", JWT: &config.JWTProvider{Issuer: "legacy", HMACSecret: secretHMAC, Algorithms: []string{"HS256"}}},
			{Name: "opaque", Introspection: &config.IntrospectionProvider{
				URL: "https://idp.bank.example/introspect", ClientID: "bulwark", ClientSecret: secretClientSecret,
			}},
			{Name: "partners", APIKey: &config.APIKeyProvider{Header: "X-API-Key", Keys: []config.APIKey{{ID: "acme", SHA256: secretDigest, Scopes: []string{"payments"}}}}},
		},
		APIs: []config.API{{
			Name: "accounts", Match: config.Match{Hosts: []string{"api.bank.example"}, PathPrefix: "/api/v1"},
			Upstream: config.Upstream{URL: "http://127.0.0.1:9000"}, Mode: "enforce",
			Authenticate: []string{"bank-idp", "partners"},
			FAPI:         &config.FAPI{CertificateBoundTokens: true},
		}},
		Inventory: config.Inventory{InternalNetworks: []string{"10.0.0.0/8"}},
	}
}

func TestRedactedConfigGolden(t *testing.T) {
	got, err := RedactedYAML(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secretAdminToken, secretDigest, secretClientSecret, secretHMAC, secretRedisPass, secretNATSToken, secretStorePass, secretQueryPass, secretPseudonym, secretHECToken} {
		if bytes.Contains(got, []byte(s)) {
			t.Errorf("redacted config still holds %q", s)
		}
	}
	// What must stay: non-secret values next to secrets.
	for _, s := range []string{"max_token_bytes: 8192", "certificate_bound_tokens: true", "client_id: bulwark", "id: acme", "url: https://siem.bank.example/hec",
		"redis://default:***@redis.internal:6379/0", "nats://***@nats.internal:4222", "postgres://bulwark:***@db.internal:5432/bulwark?sslmode=verify-full&password=***"} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("redacted config lacks %q", s)
		}
	}
	golden := filepath.Join("testdata", "golden", "config_redacted.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestRedactedConfigGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("redacted config differs from %s (rerun with -update if intended):\n%s", golden, got)
	}
}

func TestRedactGenericMap(t *testing.T) {
	in := map[string]any{
		"password":       "hunter2",
		"db_password":    12345678,
		"api_token":      []any{"tok-1", "tok-2"},
		"oauth":          map[string]any{"client_secret": "s3", "client_id": "app"},
		"secrets":        map[string]any{"a": "x", "enabled": true, "n": nil},
		"max_token_size": 4096,
		"token_empty":    "",
		"sha256":         "deadbeef",
		"dsn":            "mysql://app:pw@tcp/db",
		"plain":          "https://example.com/path?x=1",
		"query":          "https://svc.example/cb?access_token=abc&page=2",
		"nested":         []any{map[string]any{"url": "redis://:p4ss@r:6379"}},
	}
	got, err := RedactedYAML(in)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(got, &out); err != nil {
		t.Fatalf("redacted YAML does not parse: %v\n%s", err, got)
	}
	checks := map[string]any{
		"password":       mask,
		"db_password":    mask,
		"api_token":      []any{mask, mask},
		"oauth":          map[string]any{"client_secret": mask, "client_id": "app"},
		"secrets":        map[string]any{"a": mask, "enabled": true, "n": nil},
		"max_token_size": 4096,
		"token_empty":    "",
		"sha256":         mask,
		"dsn":            "mysql://app:***@tcp/db",
		"plain":          "https://example.com/path?x=1",
		"query":          "https://svc.example/cb?access_token=***&page=2",
		"nested":         []any{map[string]any{"url": "redis://:***@r:6379"}},
	}
	for k, want := range checks {
		if g, w := yamlString(t, out[k]), yamlString(t, want); g != w {
			t.Errorf("%s: got %s, want %s", k, g, w)
		}
	}
}

func yamlString(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"not a url", "not a url"},
		{"sqlite://bulwark.db", "sqlite://bulwark.db"},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"redis://user:pass@host:6379/0", "redis://user:***@host:6379/0"},
		{"redis://:pass@host", "redis://:***@host"},
		{"rediss://u:p@a:b@host/x", "rediss://u:***@host/x"},
		{"postgres://u@host/db", "postgres://u@host/db"},
		{"nats://tok@host:4222", "nats://***@host:4222"},
		{"nats://u:p@host", "nats://u:***@host"},
		{"postgres://host/db?user=a&password=b#frag", "postgres://host/db?user=a&password=***#frag"},
		{"sqlite://f.db?_auth_pass=x&_auth_user=u", "sqlite://f.db?_auth_pass=***&_auth_user=u"},
		{"https://h/?client_secret=x", "https://h/?client_secret=***"},
		{"https://h/p@q", "https://h/p@q"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactAliasAndDepth(t *testing.T) {
	src := "base: &b {password: p1, host: h}\ncopy: *b\n"
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	RedactNode(&n)
	out, err := yaml.Marshal(&n)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "p1") {
		t.Errorf("secret kept through an alias:\n%s", out)
	}
	// A deep tree must not recurse without bound.
	deep := strings.Repeat("[", 200) + strings.Repeat("]", 200)
	var d yaml.Node
	if err := yaml.Unmarshal([]byte(deep), &d); err == nil {
		RedactNode(&d)
	}
}
