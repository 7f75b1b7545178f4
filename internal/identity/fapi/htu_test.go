package fapi

import "testing"

func TestNormalizeHTU(t *testing.T) {
	tests := []struct {
		in, want string // want "" means the URI is refused
	}{
		{"https://Example.COM:443/a?q=1#f", "https://example.com/a"},
		{"https://example.com/a", "https://example.com/a"},
		{"HTTPS://EXAMPLE.com/a", "https://example.com/a"},
		{"https://example.com:8443/a", "https://example.com:8443/a"},
		{"http://example.com:80/a", "http://example.com/a"},
		{"http://example.com:443/a", "http://example.com:443/a"},
		{"https://example.com:80/a", "https://example.com:80/a"},
		{"https://example.com:/a", "https://example.com/a"},
		{"https://example.com/A/b", "https://example.com/A/b"},
		{"https://example.com", "https://example.com/"},
		{"https://example.com?x", "https://example.com/"},
		{"https://example.com/a/", "https://example.com/a/"},
		{"https://example.com/a/./b/../c", "https://example.com/a/c"},
		{"https://example.com/../a", "https://example.com/a"},
		{"https://example.com/%7euser/%2fx", "https://example.com/~user/%2Fx"},
		{"https://example.com/a%2eb", "https://example.com/a.b"},
		{"https://example.com/%2E%2E/a", "https://example.com/a"},
		{"https://[2001:DB8::1]:443/a", "https://[2001:db8::1]/a"},
		{"https://[2001:db8::1]:8443/a", "https://[2001:db8::1]:8443/a"},
		{"https://127.0.0.1/a", "https://127.0.0.1/a"},
		{"https://example.com/a b", "https://example.com/a%20b"},
		{"https://example.com/a%20b", "https://example.com/a%20b"},

		{"", ""},
		{"/a", ""},
		{"example.com/a", ""},
		{"ftp://example.com/a", ""},
		{"https:///a", ""},
		{"https://user:pw@example.com/a", ""},
		{"https:opaque", ""},
		{"https://example.com/%zz", ""},
		{"https://example.com:99999999999/a", "https://example.com:99999999999/a"},
	}
	for _, tc := range tests {
		got, err := normalizeHTU(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("normalizeHTU(%q) = %q, want refused", tc.in, got)
		case tc.want != "" && err != nil:
			t.Errorf("normalizeHTU(%q) refused: %v", tc.in, err)
		case got != tc.want:
			t.Errorf("normalizeHTU(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRemoveDotSegments(t *testing.T) {
	// RFC 3986 §5.2.4 and §5.4 examples.
	tests := map[string]string{
		"/a/b/c/./../../g":   "/a/g",
		"mid/content=5/../6": "mid/6",
		"/./g":               "/g",
		"/b/c/..":            "/b/",
		"/..":                "/",
		"/a/..b":             "/a/..b",
		"/a/b.":              "/a/b.",
		"/.../x":             "/.../x",
	}
	for in, want := range tests {
		if got := removeDotSegments(in); got != want {
			t.Errorf("removeDotSegments(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNormalizeHTU(f *testing.F) {
	for _, s := range []string{"https://Example.COM:443/a?q=1#f", "http://[::1]:80/%2e%2E/a", "https://x/a/../../b/./c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := normalizeHTU(in)
		if err != nil {
			return
		}
		// Normalisation is idempotent: the normal form is its own.
		again, err := normalizeHTU(out)
		if err != nil || again != out {
			t.Fatalf("normalizeHTU(%q) = %q, then %q, %v", in, out, again, err)
		}
	})
}
