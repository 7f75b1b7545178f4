package spec

import (
	"context"
	"testing"
)

// maxFuzzSpecBytes bounds FuzzLoad inputs: large enough for any structure
// the parser handles, small enough to keep each run fast.
const maxFuzzSpecBytes = 64 << 10

func FuzzMatch(f *testing.F) {
	r := mustRouter(f, "testdata/router.yaml")
	for _, s := range []struct{ method, path string }{
		{"GET", "/api/v1/accounts/acc_8f3a/balances"},
		{"GET", "/open-banking/v4.0/aisp/accounts/current"},
		{"HEAD", "/api/v2/accounts/1/statements/2/"},
		{"POST", "/api/v1/v1/acme:verify"},
		{"GET", "/api/v1/files/a.b.tar.gz"},
		{"GET", "/api/v1/reports/2026-01-01..2026-03-31"},
		{"GET", "/api/v1/accounts/%E2%82%AC%2F"},
		{"DELETE", "//"},
		{"get", ""},
	} {
		f.Add(s.method, s.path)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		buf := make([]string, 0, 2)
		m := r.Match(method, path, buf)
		switch m.Status {
		case Matched:
			if m.Op == nil || len(m.Values) != len(m.Op.PathParams) {
				t.Fatalf("Match(%q, %q): op %v with %d values", method, path, m.Op, len(m.Values))
			}
			for i, v := range m.Values {
				if v == "" {
					t.Fatalf("Match(%q, %q): empty value for %s", method, path, m.Op.PathParams[i])
				}
			}
			if m.Op.Method != method && !(method == "HEAD" && m.Op.Method == "GET") {
				t.Fatalf("Match(%q, %q): matched %s", method, path, m.Op.Key)
			}
		case MethodNotAllowed:
			if m.Op != nil || len(m.Allowed) == 0 {
				t.Fatalf("Match(%q, %q): MethodNotAllowed with op %v allowed %q", method, path, m.Op, m.Allowed)
			}
		case NotFound:
			if m.Op != nil || len(m.Values) != 0 {
				t.Fatalf("Match(%q, %q): NotFound with op %v values %q", method, path, m.Op, m.Values)
			}
		default:
			t.Fatalf("Match(%q, %q): status %d", method, path, m.Status)
		}
	})
}

func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a/{b}.json:\n    get:\n      parameters: [{name: b, in: path, required: true, schema: {type: string}}]\n      responses: {'200': {description: ok}}\n",
		"openapi: 3.1.0\ninfo: {title: x, version: '1'}\nservers: [{url: 'https://{h}/v{n}', variables: {h: {default: a}, n: {default: '1', enum: ['1', '2']}}}]\n",
		"swagger: '2.0'\ninfo: {title: x, version: '1'}\nbasePath: /v1\npaths:\n  /p/{id}:\n    get:\n      parameters: [{name: id, in: path, required: true, type: integer}]\n      responses: {'200': {description: ok}}\n",
		`{"openapi":"3.0.0","info":{"title":"x","version":"1"},"paths":{"/a":{"$ref":"#/paths/~1a"}}}`,
		"openapi: 3.0.3\ninfo: {title: x, version: '1'}\ncomponents: {schemas: {A: {$ref: '#/components/schemas/A'}}}\npaths: {}\n",
		"openapi: 3.0.3\npaths: {/x: {get: {responses: {default: {$ref: 'http://example.com/r.yaml'}}}}}\n",
		"a: &a [*a, *a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzSpecBytes {
			return
		}
		// No location: file references are refused, so the fuzzer never
		// reads the file system.
		doc, err := LoadData(context.Background(), data, "")
		if err != nil {
			return
		}
		if len(doc.BasePaths) == 0 {
			t.Fatal("no base paths")
		}
		r, err := NewRouter(doc)
		if err != nil {
			return
		}
		for _, op := range doc.Operations {
			if op.Key != op.Method+" "+op.Path || doc.Operation(op.Key) != op {
				t.Fatalf("operation %q not found by key", op.Key)
			}
			_ = r.Match(op.Method, doc.BasePaths[0]+op.Path, nil)
		}
	})
}
