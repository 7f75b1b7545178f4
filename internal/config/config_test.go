package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var testEnv = map[string]string{"BULWARK_TEST_TOKEN": "0123456789abcdef0123"}

func load(t *testing.T, path string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	return Parse(data, abs, env(testEnv))
}

// TestMustShow is the acceptance case of issue #2: an unknown key, a
// malformed duration and an API without an upstream, all three reported
// with file:line.
func TestMustShow(t *testing.T) {
	_, err := load(t, "testdata/invalid/must_show.yaml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []struct {
		line int
		text string
	}{
		{8, `invalid duration "5 seconds"`},
		{10, `unknown key "colour"`},
		{14, "apis[1].upstream.url: required"},
	}
	if len(errs) != len(want) {
		t.Fatalf("want %d errors, got %d:\n%v", len(want), len(errs), err)
	}
	for i, w := range want {
		got := errs[i].Error()
		prefix := "testdata/invalid/must_show.yaml:" + itoa(w.line) + ":"
		if !strings.HasPrefix(got, prefix) || !strings.Contains(got, w.text) {
			t.Errorf("error %d = %q, want prefix %q containing %q", i, got, prefix, w.text)
		}
	}
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// TestInvalidGolden checks the full error listing of each invalid config
// against testdata/golden/<name>.txt (refresh with -update).
func TestInvalidGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no invalid configs")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			_, err := load(t, f)
			if err == nil {
				t.Fatal("invalid config loaded without error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want Errors, got %T %v", err, err)
			}
			for _, e := range errs {
				if e.Line == 0 {
					t.Errorf("error without a line: %v", e)
				}
			}
			got := err.Error() + "\n"
			golden := filepath.Join("testdata/golden", name+".txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestValidMinimalDefaults(t *testing.T) {
	c, err := load(t, "testdata/valid/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"read_header_timeout", c.Limits.ReadHeaderTimeout.D(), DefaultReadHeaderTimeout},
		{"idle_timeout", c.Limits.IdleTimeout.D(), DefaultIdleTimeout},
		{"max_header_bytes", int64(c.Limits.MaxHeaderBytes), int64(DefaultMaxHeaderBytes)},
		{"max_body_bytes", int64(c.Limits.MaxBodyBytes), int64(DefaultMaxBodyBytes)},
		{"max_conns_per_ip", c.Limits.MaxConnsPerIP, DefaultMaxConnsPerIP},
		{"max_in_flight", c.Limits.MaxInFlight, DefaultMaxInFlight},
		{"admin.addr", c.Admin.Addr, DefaultAdminAddr},
		{"admin.token", c.Admin.Token, "0123456789abcdef0123"},
		{"store.url", c.Store.URL, "sqlite://" + mustAbs("testdata/valid/bulwark.db")},
		{"tls.min_version", c.Listeners[0].TLS.MinVersion, "1.2"},
		{"tls.client_auth", c.Listeners[0].TLS.ClientAuth, "none"},
		{"mode", c.APIs[0].Mode, "enforce"},
		{"path_prefix", c.APIs[0].Match.PathPrefix, "/"},
		{"retries", *c.APIs[0].Upstream.Retries, DefaultRetries},
		{"breaker failures", c.APIs[0].Upstream.CircuitBreaker.Failures, DefaultBreakerFailures},
		{"request id header", c.RequestID.Header, "X-Request-Id"},
		{"accept incoming", *c.RequestID.AcceptIncoming, true},
		{"cert path resolved", c.Listeners[0].TLS.CertFile, mustAbs("testdata/tls.crt")},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// The one warning of a minimal config: no pseudonym secret.
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "privacy.pseudonym_secret: not set") {
		t.Errorf("warnings %v, want the pseudonym secret's", c.Warnings)
	}
}

func mustAbs(p string) string { a, _ := filepath.Abs(p); return a }

func TestValidFull(t *testing.T) {
	c, err := load(t, "testdata/valid/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := c.APIs[0]
	if a.Mode != "monitor" || !a.Upstream.StripPrefix || *a.Upstream.Retries != 0 || a.Upstream.DialTimeout.D() != 2*time.Second {
		t.Errorf("accounts api decoded wrong: %+v", a)
	}
	if c.Limits.MaxBodyBytes != 2<<20 || c.Limits.MaxHeaderBytes != 32<<10 {
		t.Errorf("sizes: %d %d", c.Limits.MaxBodyBytes, c.Limits.MaxHeaderBytes)
	}
	if c.APIs[1].Match.PathPrefix != "/payments" {
		t.Errorf("env default not applied: %q", c.APIs[1].Match.PathPrefix)
	}
	if *c.RequestID.AcceptIncoming {
		t.Error("accept_incoming false was lost")
	}
	p := c.APIs[1]
	wantNames := []string{"ip", "ip-2", "tenant", "operation"}
	for i, rl := range p.RateLimits {
		if rl.Name != wantNames[i] {
			t.Errorf("rate_limits[%d].name = %q, want %q", i, rl.Name, wantNames[i])
		}
	}
	if p.RateLimits[0].Burst != 50 || p.RateLimits[1].Burst != 5 || p.RateLimits[3].Burst != 0 {
		t.Errorf("bursts: %d %d %d", p.RateLimits[0].Burst, p.RateLimits[1].Burst, p.RateLimits[3].Burst)
	}
	if th := p.Throttle; th.MaxConcurrency != 64 || th.QueueTimeout.D() != 500*time.Millisecond || !th.Adaptive {
		t.Errorf("throttle: %+v", th)
	}
	if bf := p.BruteForce; bf.Lockout.D() != 15*time.Minute || *bf.Delay != 0 || bf.MaxClientFailures != 20 ||
		len(bf.FailureStatuses) != 2 || bf.MaxUsernamesPerClient != DefaultStuffingThreshold {
		t.Errorf("brute_force defaults: %+v", bf)
	}
	if c.Cluster.RedisFallback != "local" || c.Forwarding.ClientAddressHeader != "X-Forwarded-For" || len(c.Forwarding.TrustedProxies) != 3 {
		t.Errorf("cluster/forwarding defaults: %+v %+v", c.Cluster, c.Forwarding)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "plain-HTTP") {
		t.Errorf("want one plain-HTTP warning, got %v", c.Warnings)
	}
}

func TestExamplesAreValid(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) == 0 {
		t.Skip("no examples/ directory")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m := map[string]string{"BULWARK_ADMIN_TOKEN": "example-admin-token-0123456789", "BULWARK_PSEUDONYM_SECRET": "example-pseudonym-secret-0123456789abcdef"}
			data, _ := os.ReadFile(f)
			abs, _ := filepath.Abs(f)
			if _, err := Parse(data, abs, env(m)); err != nil {
				t.Fatalf("example does not load:\n%v", err)
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	vars := env(map[string]string{"A": "alpha", "EMPTY": "", "N": "42"})
	tests := []struct {
		in, out string
		missing []string
	}{
		{"plain", "plain", nil},
		{"${A}", "alpha", nil},
		{"x-${A}-y", "x-alpha-y", nil},
		{"$$", "$", nil},
		{"$${A}", "${A}", nil},
		{"${B:-bee}", "bee", nil},
		{"${EMPTY:-fallback}", "fallback", nil},
		{"${EMPTY}", "", nil},
		{"${MISSING}", "", []string{"MISSING"}},
		{"${A}${MISSING}${N}", "alpha42", []string{"MISSING"}},
		{"${unterminated", "${unterminated", nil},
		{"${1BAD}", "${1BAD}", nil},
		{"cost $5", "cost $5", nil},
		{"trailing $", "trailing $", nil},
	}
	for _, tt := range tests {
		out, missing := expandEnv(tt.in, vars)
		if out != tt.out || strings.Join(missing, ",") != strings.Join(tt.missing, ",") {
			t.Errorf("expandEnv(%q) = %q %v, want %q %v", tt.in, out, missing, tt.out, tt.missing)
		}
	}
}

func TestEnvNumberStaysNumber(t *testing.T) {
	src := "listeners: [{addr: ':1', insecure: true}]\nadmin: {token: 0123456789abcdef0123}\nlimits:\n  max_in_flight: ${N}\napis: [{name: a, upstream: {url: 'http://x:1'}}]\n"
	c, err := Parse([]byte(src), "/tmp/x.yaml", env(map[string]string{"N": "77"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxInFlight != 77 {
		t.Fatalf("max_in_flight = %d", c.Limits.MaxInFlight)
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1048576, true}, {"16KiB", 16384, true}, {"1 MiB", 1 << 20, true},
		{"2MB", 2000000, true}, {"1GiB", 1 << 30, true}, {"0", 0, true}, {"10B", 10, true},
		{"-1", 0, false}, {"1.5MiB", 0, false}, {"lots", 0, false}, {"", 0, false},
		{"99999999999999999999", 0, false}, {"9223372036854775807GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	src := `
x-common: &common
  dial_timeout: 1s
listeners: [{addr: ':1', insecure: true}]
admin: {token: 0123456789abcdef0123}
apis: [{name: a, upstream: {<<: *common, url: 'http://x:1'}}]
`
	_, err := Parse([]byte(src), "/tmp/x.yaml", env(nil))
	if err == nil || !strings.Contains(err.Error(), `unknown key "x-common"`) {
		t.Fatalf("want unknown top-level key, got %v", err)
	}
	src2 := strings.Replace(src, "x-common: &common\n  dial_timeout: 1s\n", "", 1)
	src2 = strings.Replace(src2, "{<<: *common, url", "{url", 1)
	if _, err := Parse([]byte(src2), "/tmp/x.yaml", env(nil)); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyAndHostile(t *testing.T) {
	for _, src := range []string{"", "---\n", "null", "[]", "42", "a: b\n---\nc: d", "&a [*a]", strings.Repeat("[", 10000)} {
		_, err := Parse([]byte(src), "/tmp/x.yaml", env(nil))
		if err == nil {
			t.Errorf("Parse(%.20q) accepted", src)
		}
	}
}
