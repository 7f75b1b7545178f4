package inventory

import (
	"fmt"
	"strings"
	"testing"
)

// fuzzTemplater returns a templater with hints and some learned traffic,
// so fuzzed paths meet known, learned and collapsed positions.
func fuzzTemplater() *Templater {
	tp := NewTemplater(TemplaterOptions{Hints: []string{
		"/customers/{id}", "/customers/current", "/files/{name}.json", "/v{major}/ping",
	}})
	for i := range 60 { // enough word values to collapse /users/*
		tp.Observe("GET", fmt.Sprintf("/accounts/%d/balances", i))
		tp.Observe("GET", fmt.Sprintf("/users/user%c%c/repos", 'a'+i%26, 'a'+i/26))
		tp.Observe("GET", "/accounts/current")
	}
	return tp
}

// maxFuzzPaths bounds the paths one fuzz input observes.
const maxFuzzPaths = 256

// FuzzTemplate observes the input's lines as paths, then checks every one:
// no panic, a template with the path's segments, idempotent on its own
// output.
func FuzzTemplate(f *testing.F) {
	// The checked-in corpus under testdata/fuzz/FuzzTemplate holds more.
	f.Add("/customers/42")
	f.Fuzz(func(t *testing.T, input string) {
		tp := fuzzTemplater()
		paths := strings.Split(input, "\n")
		if len(paths) > maxFuzzPaths {
			paths = paths[:maxFuzzPaths]
		}
		for _, p := range paths {
			tp.Observe("GET", p)
		}
		for _, p := range paths {
			checkTemplate(t, tp, p)
		}
	})
}

// checkTemplate asserts the properties of Template on one path.
func checkTemplate(t *testing.T, tp *Templater, path string) {
	t.Helper()
	tmpl, params := tp.Template(path)
	if got, want := strings.Count(tmpl, "/"), strings.Count(path, "/"); got != want {
		t.Fatalf("Template(%q) = %q: %d segments, want %d", path, tmpl, got+1, want+1)
	}
	again, params2 := tp.Template(tmpl)
	if again != tmpl {
		t.Fatalf("not idempotent: Template(%q) = %q, Template(%q) = %q", path, tmpl, tmpl, again)
	}
	if len(params) != len(params2) {
		t.Fatalf("params %q then %q", params, params2)
	}
	if n := strings.Count(tmpl, "{"); n < len(params) {
		t.Fatalf("Template(%q) = %q with %d params %q", path, tmpl, len(params), params)
	}
}

func TestFuzzTemplaterCollapsed(t *testing.T) {
	if got, _ := fuzzTemplater().Template("/users/someone/repos"); got != "/users/{userId}/repos" {
		t.Errorf("fuzz templater: /users/* not collapsed: %q", got)
	}
}
