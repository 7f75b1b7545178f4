package spec

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func mustRouter(t testing.TB, path string) *Router {
	t.Helper()
	r, err := NewRouter(mustLoad(t, path))
	if err != nil {
		t.Fatalf("NewRouter(%s): %v", path, err)
	}
	return r
}

func TestRouterMatch(t *testing.T) {
	r := mustRouter(t, "testdata/router.yaml")
	type want struct {
		status  MatchStatus
		key     string
		values  []string
		allowed []string
	}
	hit := func(key string, values ...string) want { return want{status: Matched, key: key, values: values} }
	notFound := want{status: NotFound}
	tests := []struct {
		method, path string
		want         want
	}{
		// base paths: every server, longest first, segment-wise
		{"GET", "/api/v1/accounts", hit("GET /accounts")},
		{"GET", "/api/v2/accounts", hit("GET /accounts")},
		{"GET", "/open-banking/v4.0/aisp/accounts", hit("GET /accounts")},
		{"GET", "/accounts", hit("GET /accounts")}, // http://localhost:8080 has no path
		{"GET", "/api/v3/accounts", notFound},
		{"GET", "/open-banking/v4.0/aispx/accounts", notFound},
		{"GET", "/open-banking/v4.0/aisp", hit("GET /")},
		{"GET", "/open-banking/v4.0/aisp/", hit("GET /")},
		{"GET", "/", hit("GET /")},
		{"GET", "", hit("GET /")},
		{"GET", "//", notFound},
		{"GET", "*", notFound},
		{"GET", "accounts", notFound},

		// literal before parameter, with backtracking
		{"GET", "/api/v1/accounts/current", hit("GET /accounts/current")},
		{"GET", "/api/v1/accounts/current/balances", hit("GET /accounts/{id}/balances", "current")},
		{"GET", "/api/v1/accounts/acc_8f3a29c1/balances", hit("GET /accounts/{id}/balances", "acc_8f3a29c1")},
		{"GET", "/api/v1/accounts/42", hit("GET /accounts/{id}", "42")},
		{"DELETE", "/api/v1/accounts/42", hit("DELETE /accounts/{id}", "42")},
		{"GET", "/api/v1/accounts/42/statements/st-7", hit("GET /accounts/{accountId}/statements/{statementId}", "42", "st-7")},
		{"GET", "/api/v1/accounts/current/statements/st-7", hit("GET /accounts/{accountId}/statements/{statementId}", "current", "st-7")},
		{"GET", "/api/v1/accounts/42/unknown", notFound},
		{"GET", "/api/v1/accounts/42/balances/extra", notFound},
		// the path decides first: /accounts/current has no DELETE
		{"DELETE", "/api/v1/accounts/current", want{status: MethodNotAllowed, allowed: []string{"GET", "HEAD"}}},

		// trailing slash, empty segments, empty values
		{"GET", "/api/v1/accounts/", hit("GET /accounts")},
		{"GET", "/api/v1/accounts/42/", hit("GET /accounts/{id}", "42")},
		{"GET", "/api/v1/accounts//", notFound},
		{"GET", "/api/v1//accounts", notFound},
		{"GET", "/api/v1/accounts//balances", notFound},

		// percent-decoding: values decoded, %2F stays inside a segment
		{"GET", "/api/v1/accounts/a%2Fb", hit("GET /accounts/{id}", "a/b")},
		{"GET", "/api/v1/accounts/J%C3%BCrgen%20K", hit("GET /accounts/{id}", "Jürgen K")},
		{"GET", "/api/v1/accounts/%63urrent", hit("GET /accounts/current")}, // %63 is 'c'
		{"GET", "/api/v1/accounts%2F42", notFound},
		{"GET", "/api/v1/accounts/%zz", notFound},
		{"GET", "/api/v1/accounts/%", notFound},

		// mixed segments: longest literal first; empty value never matches
		{"GET", "/api/v1/files/f-1", hit("GET /files/{fileID}", "f-1")},
		{"GET", "/api/v1/files/f-1.json", hit("GET /files/{fileID}.json", "f-1")},
		{"GET", "/api/v1/files/f-1.tar.gz", hit("GET /files/{fileID}.tar.gz", "f-1")},
		{"GET", "/api/v1/files/a.b.json", hit("GET /files/{fileID}.json", "a.b")},
		{"GET", "/api/v1/files/.json", hit("GET /files/{fileID}", ".json")},
		{"GET", "/api/v1/files/x%2Ejson", hit("GET /files/{fileID}.json", "x")},
		{"POST", "/api/v1/v1/acme:verify", hit("POST /v1/{name}:verify", "acme")},
		{"GET", "/api/v1/v1/acme:verify", want{status: MethodNotAllowed, allowed: []string{"POST"}}},
		{"GET", "/api/v1/v1/acme", hit("GET /v1/{name}", "acme")},
		{"POST", "/api/v1/v1/:verify", want{status: MethodNotAllowed, allowed: []string{"GET", "HEAD"}}}, // empty name: falls to {name}
		{"GET", "/api/v1/reports/2026-01-01..2026-03-31", hit("GET /reports/{from}..{to}", "2026-01-01", "2026-03-31")},
		{"GET", "/api/v1/reports/2026-01-01..", notFound},
		{"GET", "/api/v1/reports/..2026-03-31", notFound},
		{"GET", "/api/v1/reports/2026", notFound},

		// methods: case-sensitive, HEAD falls back to GET unless declared
		{"HEAD", "/api/v1/accounts", hit("GET /accounts")},
		{"HEAD", "/api/v1/accounts/1/statements/2", hit("HEAD /accounts/{accountId}/statements/{statementId}", "1", "2")},
		{"get", "/api/v1/accounts", want{status: MethodNotAllowed, allowed: []string{"GET", "HEAD", "POST"}}},
		{"PUT", "/api/v1/accounts/42", want{status: MethodNotAllowed, allowed: []string{"DELETE", "GET", "HEAD"}}},
		{"PATCH", "/nope", notFound},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			buf := make([]string, 0, 4)
			m := r.Match(tc.method, tc.path, buf)
			if m.Status != tc.want.status {
				t.Fatalf("status = %v, want %v (op %v)", m.Status, tc.want.status, m.Op)
			}
			switch m.Status {
			case Matched:
				if m.Op == nil || m.Op.Key != tc.want.key {
					t.Fatalf("op = %v, want %s", m.Op, tc.want.key)
				}
				if len(m.Values) != len(m.Op.PathParams) {
					t.Fatalf("%d values for %d params", len(m.Values), len(m.Op.PathParams))
				}
				if len(m.Values) > 0 && !reflect.DeepEqual(m.Values, tc.want.values) {
					t.Errorf("values = %q, want %q", m.Values, tc.want.values)
				}
				if len(tc.want.values) != len(m.Values) {
					t.Errorf("values = %q, want %q", m.Values, tc.want.values)
				}
			case MethodNotAllowed:
				if m.Op != nil || !reflect.DeepEqual(m.Allowed, tc.want.allowed) {
					t.Errorf("op = %v allowed = %q, want no op and %q", m.Op, m.Allowed, tc.want.allowed)
				}
			default:
				if m.Op != nil || len(m.Values) != 0 || m.Allowed != nil {
					t.Errorf("not found carries op=%v values=%q allowed=%q", m.Op, m.Values, m.Allowed)
				}
			}
		})
	}
}

func TestRouterValuesUseCallerBuffer(t *testing.T) {
	r := mustRouter(t, "testdata/router.yaml")
	buf := make([]string, 3, 8)
	buf[0] = "stale"
	m := r.Match("GET", "/api/v1/accounts/7/statements/9", buf)
	if m.Status != Matched || !reflect.DeepEqual(m.Values, []string{"7", "9"}) {
		t.Fatalf("match = %+v", m)
	}
	if &m.Values[0] != &buf[:1][0] {
		t.Error("values not appended to the caller's buffer")
	}
	// A nil buffer works too.
	if m := r.Match("GET", "/api/v1/accounts/7", nil); m.Status != Matched || m.Values[0] != "7" {
		t.Errorf("nil buffer: %+v", m)
	}
}

func TestRouterZeroAllocs(t *testing.T) {
	r := mustRouter(t, "testdata/router.yaml")
	buf := make([]string, 0, 4)
	allocs := testing.AllocsPerRun(200, func() {
		m := r.Match("GET", "/open-banking/v4.0/aisp/accounts/acc_8f3a/statements/st_1", buf)
		if m.Status != Matched {
			t.Fatal("no match")
		}
		_ = r.Match("GET", "/api/v1/files/f-1.tar.gz", buf)
		_ = r.Match("PUT", "/api/v1/accounts/42", buf)
		_ = r.Match("GET", "/api/v9/nothing/here", buf)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per run, want 0", allocs)
	}
}

func TestRouterOperations(t *testing.T) {
	doc := mustLoad(t, "testdata/router.yaml")
	r, err := NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Operations(); len(got) != len(doc.Operations) || len(got) == 0 || got[0] != doc.Operations[0] {
		t.Errorf("Operations() = %d ops, want the document's %d", len(got), len(doc.Operations))
	}
}

func TestNewRouterErrors(t *testing.T) {
	op := func(method, path string) *Operation {
		params, _ := templateParams(path)
		return &Operation{Method: method, Path: path, Key: method + " " + path, PathParams: params}
	}
	tests := []struct {
		name string
		ops  []*Operation
		want string // "" = no error
	}{
		{"same shape different names same method", []*Operation{op("GET", "/a/{x}"), op("GET", "/a/{y}")}, "cannot be told apart"},
		{"same shape different methods", []*Operation{op("GET", "/a/{x}"), op("PUT", "/a/{y}")}, ""},
		{"trailing slash twin", []*Operation{op("GET", "/a"), op("GET", "/a/")}, "cannot be told apart"},
		{"mixed twins", []*Operation{op("GET", "/f/{a}.json"), op("GET", "/f/{b}.json")}, "cannot be told apart"},
		{"literal and param", []*Operation{op("GET", "/a/b"), op("GET", "/a/{b}")}, ""},
		{"empty segment", []*Operation{op("GET", "/a//b")}, "empty segment"},
		{"no leading slash", []*Operation{op("GET", "a/b")}, "must start with '/'"},
		{"unbalanced", []*Operation{op("GET", "/a/{b")}, "unbalanced"},
		{"adjacent params", []*Operation{op("GET", "/a/{b}{c}")}, "adjacent parameters"},
		{"too deep", []*Operation{op("GET", strings.Repeat("/x", maxTemplateSegments+1))}, "path segments"},
		{"too many params in a segment", []*Operation{op("GET", "/"+strings.Repeat("{p}-", maxParamsPerSegment)+"{q}")}, "parameters in one segment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRouter(&Document{Path: "mem", Operations: tc.ops, BasePaths: []string{""}})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := NewRouter(nil); err == nil {
		t.Error("nil document accepted")
	}
}

func TestRouterEscapedTemplateLiteral(t *testing.T) {
	ops := []*Operation{
		{Method: "GET", Path: "/by%20name/{id}.v%31", Key: "GET /by%20name/{id}.v%31", PathParams: []string{"id"}},
	}
	r, err := NewRouter(&Document{Operations: ops, BasePaths: []string{""}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/by%20name/7.v1", "/by%20name/7.v%31", "/by name/7.v1"} {
		if m := r.Match("GET", p, nil); m.Status != Matched || m.Values[0] != "7" {
			t.Errorf("GET %s: %v %q", p, m.Status, m.Values)
		}
	}
	if m := r.Match("GET", "/by%2520name/7.v1", nil); m.Status != NotFound {
		t.Errorf("double-escaped literal matched: %v", m.Status)
	}
}

func TestRouterNoBasePaths(t *testing.T) {
	doc, err := LoadData(context.Background(), []byte("openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /ping:\n    get:\n      responses: {'200': {description: ok}}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.BasePaths, []string{""}) {
		t.Fatalf("BasePaths = %q", doc.BasePaths)
	}
	doc.BasePaths = nil // a hand-built document without base paths still routes
	r, err := NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Match("GET", "/ping", nil); m.Status != Matched {
		t.Errorf("GET /ping: %v", m.Status)
	}
}

func TestMatchStatusString(t *testing.T) {
	for s, want := range map[MatchStatus]string{Matched: "Matched", NotFound: "NotFound", MethodNotAllowed: "MethodNotAllowed"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}
