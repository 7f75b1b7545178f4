package dashboard

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzInventoryFilter: any query parses without panic into a filter of
// allowed, bounded values that survives a round trip through its own
// links. Seeds: testdata/fuzz/FuzzInventoryFilter.
func FuzzInventoryFilter(f *testing.F) {
	f.Add("status=shadow&sensitive=true")
	f.Add("api=bank&exposure=north-south&unauthenticated=on&sort=last_seen&q=%2Faccounts")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl := parseInventoryFilter(q)
		if fl.Status != "" && oneOf(fl.Status, specStatuses) == "" {
			t.Fatalf("status %q accepted", fl.Status)
		}
		if fl.Exposure != "" && oneOf(fl.Exposure, exposures) == "" {
			t.Fatalf("exposure %q accepted", fl.Exposure)
		}
		if fl.Sort != "" && oneOf(fl.Sort, sortKeys) == "" {
			t.Fatalf("sort %q accepted", fl.Sort)
		}
		for _, v := range []string{fl.API, fl.Search, fl.Class} {
			if len(v) > maxFilterLen || !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n") {
				t.Fatalf("unclean value %q", v)
			}
		}
		if fl.Class != "" && classParam(fl.Class) != fl.Class {
			t.Fatalf("class %q accepted", fl.Class)
		}
		again := parseInventoryFilter(fl.Query())
		if again != fl {
			t.Fatalf("round trip: %+v -> %q -> %+v", fl, fl.Query().Encode(), again)
		}
		ff := parseFindingsFilter(q)
		if ff.Kind != "" && kindParam(ff.Kind) != ff.Kind {
			t.Fatalf("kind %q accepted", ff.Kind)
		}
		if parseFindingsFilter(ff.Query()) != ff {
			t.Fatalf("findings filter round trip: %+v", ff)
		}
	})
}

// FuzzLoginForm: any form body parses without panic; a field is accepted
// only when it is single, well formed and bounded. Seeds:
// testdata/fuzz/FuzzLoginForm.
func FuzzLoginForm(f *testing.F) {
	f.Add("token=abc&csrf=" + strings.Repeat("A", 43))
	f.Add("token=a&token=b&csrf=x")
	f.Fuzz(func(t *testing.T, body string) {
		v, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		lf, csrfOK, tokenOK := parseLoginForm(v)
		if csrfOK != (len(v[csrfField]) == 1 && wellFormed(v[csrfField][0])) {
			t.Fatalf("csrf accepted=%v for %q", csrfOK, v[csrfField])
		}
		if csrfOK && lf.CSRF != v[csrfField][0] {
			t.Fatalf("csrf %q", lf.CSRF)
		}
		if !csrfOK && lf.CSRF != "" {
			t.Fatalf("rejected csrf kept: %q", lf.CSRF)
		}
		if tokenOK && (len(v[tokenField]) != 1 || lf.Token != v[tokenField][0] || lf.Token == "" || len(lf.Token) > maxTokenLen) {
			t.Fatalf("token accepted: %q", v[tokenField])
		}
		if !tokenOK && lf.Token != "" {
			t.Fatalf("rejected token kept: %q", lf.Token)
		}
	})
}
