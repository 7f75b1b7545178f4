package shape

import (
	"testing"
)

// FuzzInfer: any body gives nil or a schema within the bounds, with body
// parameters only for named top-level properties; nothing panics.
func FuzzInfer(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[{"c":"x"}]}`, `[1,2]`, `{"alice@example.com":{"n":1}}`, `"s"`, `{`, ``, `{"a":1} 2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, ps := Infer(body)
		if s == nil {
			if ps != nil {
				t.Fatalf("params %v without a schema", ps)
			}
			return
		}
		if Depth(s) > MaxDepth || Nodes(s) > MaxNodes+1 {
			t.Fatalf("schema of depth %d, %d nodes", Depth(s), Nodes(s))
		}
		if len(ps) > MaxProperties {
			t.Fatalf("%d params", len(ps))
		}
		for _, p := range ps {
			if !NameLike(p.Name) || p.In != "body" {
				t.Fatalf("param %+v", p)
			}
		}
	})
}

// FuzzIDs: any body gives at most MaxIDs distinct ids, each one hashed
// value; nothing panics.
func FuzzIDs(f *testing.F) {
	for _, s := range []string{`{"id":"a","data":[{"accountId":1}]}`, `[[{"id":"x"}]]`, `{"i\u0064":"v"}`, `{"id":1.5}`, `{`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		seen := map[string]bool{}
		for _, id := range IDs(body, ident) {
			if id == "" || len(id) > 128 || seen[id] {
				t.Fatalf("id %q (seen %v)", id, seen[id])
			}
			seen[id] = true
		}
		if len(seen) > MaxIDs {
			t.Fatalf("%d ids", len(seen))
		}
	})
}
