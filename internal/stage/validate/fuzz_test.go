package validate

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// FuzzRequestBody feeds arbitrary bytes as the JSON body of a fixed
// operation: the stage never panics, and what it says (Detail, Rules) never
// carries 8 or more consecutive bytes of the input unless they are part of a
// name the spec declares.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{
		`{"currency":"GBP"}`,
		`{"currency":"GBP","balance":1,"owner":{"name":"A","isAdmin":true}}`,
		`{"<script>alert(document.cookie)</script>":1}`,
		`{"currency":"' OR 1=1; DROP TABLE accounts; --"}`,
		`{"tags":[{"createdAt":"x"},{"label":{"deep":["nested"]}}],"metadata":{"hostile-key-name-here":7}}`,
		`[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]`,
		`{"currency":`,
		"\x00\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	h := newHarness(f, loadDoc(f, fixture), defaults())
	vocab := h.req.s.vocab
	f.Fuzz(func(t *testing.T, body []byte) {
		x := h.exchange(t, newReq("POST", base+"/accounts", "application/json", string(body)))
		d := h.req.Handle(context.Background(), x)
		out := d.Detail + "\n" + strings.Join(d.Rules, "\n")
		// Names the spec declares may appear; blank them out first.
		for name := range vocab {
			out = strings.ReplaceAll(out, name, "\x00")
		}
		in := string(body)
		for i := 0; i+8 <= len(in); i++ {
			if sub := in[i : i+8]; strings.Contains(out, sub) && !fixedText(sub) {
				t.Fatalf("output echoes input bytes %q:\n%s", sub, out)
			}
		}
	})
}

// fixedText reports whether s occurs in the stage's own wording, which an
// input may happen to contain ("violations", "additional property").
func fixedText(s string) bool {
	const wording = "The request does not match the API contract: violations: violation: " +
		"additional property readOnly required malformed not allowed undocumented maxLength minLength " +
		"pattern format maximum minimum type enum, and  more. body. query. path. header. cookie."
	return strings.Contains(wording, s)
}

// FuzzDecodeJSONAny: the fast decoder accepts exactly what encoding/json
// accepts, and gives the same value.
func FuzzDecodeJSONAny(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,-0,"x",true,null,{"b":{}}]}`, `{"a":1,"a":2}`, `"\ud83d\ude00"`, `[]`, ` 1 `,
		`{"a":1} 2`, `NaN`, `nan`, `Infinity`, `-`, `01`, `1.`, `"\u00"`, "\"\xff\"", `{"a" 1}`, `[1,]`, `tru`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gerr := decodeJSONAny(data)
		want, werr := decodeJSONStd(data)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: fast error %v, encoding/json error %v", data, gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %#v, encoding/json %#v", data, got, want)
		}
	})
}
