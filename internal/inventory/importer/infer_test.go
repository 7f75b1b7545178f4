package importer

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
)

func TestQueryParams(t *testing.T) {
	ps := pairParams(splitQuery("b=1&a=x&b=2&flag&alice%40example.com=1&%zz=1&c=%zz&=v&&d=true"), "query")
	var got []string
	for _, p := range ps {
		got = append(got, p.Name+":"+p.Type)
	}
	if g := strings.Join(got, ","); g != "a:string,b:array,c:string,d:boolean,flag:string" {
		t.Errorf("params %s", g)
	}
	if n := len(splitQuery(strings.Repeat("a=1&", 10*MaxQueryParams))); n != MaxQueryParams {
		t.Errorf("%d pairs, want %d", n, MaxQueryParams)
	}
}

func TestCredentials(t *testing.T) {
	const jwtNone = "eyJhbGciOiJub25lIn0.eyJzdWIiOjQyfQ." // {"sub":42}
	tests := []struct {
		value       string
		auth, subj  string
		notPresent  bool
		description string
	}{
		{value: "Bearer " + jwtNone, auth: event.AuthJWT, subj: hashValue("42")},
		{value: "bearer eyJhbGciOiJub25lIn0.bm90IGpzb24.sig", auth: event.AuthJWT},  // payload not JSON
		{value: "Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", auth: event.AuthJWT}, // no sub
		{value: "Bearer a..b", auth: event.AuthIntrospection},
		{value: "Bearer 2YotnFZFEjr1zCsicMWpAA", auth: event.AuthIntrospection},
		{value: "Basic dXNlcjpwYXNz", auth: event.AuthBasic, subj: hashValue("user")},
		{value: "Basic !!!", auth: event.AuthBasic},
		{value: `Digest username="u", realm="r"`, auth: event.AuthBasic},
		{value: "ApiKey abc", auth: event.AuthAPIKey},
		{value: jwtNone, auth: event.AuthJWT, subj: hashValue("42")},
		{value: "  ", notPresent: true},
	}
	for _, tt := range tests {
		c, ok := fromAuthorization(tt.value)
		if ok == tt.notPresent || c.auth != tt.auth || c.subject != tt.subj {
			t.Errorf("%q: %+v %v, want %s %s", tt.value, c, ok, tt.auth, tt.subj)
		}
	}
	for _, name := range []string{"X-API-Key", "api-key", "apikey", "API_KEY", "x_api_key"} {
		if !apiKeyName(name) {
			t.Errorf("apiKeyName(%q) = false", name)
		}
	}
	if apiKeyName("key") || apiKeyName("x-api-keys-are-here") {
		t.Error("apiKeyName too broad")
	}
}

func TestJSONLFields(t *testing.T) {
	tests := []struct {
		line   string
		reason string
		check  func(event.Exchange) bool
	}{
		{line: `{"time":1735787045,"method":"GET","path":"/a"}`,
			check: func(x event.Exchange) bool { return x.Time.Equal(time.Unix(1735787045, 0)) && x.Auth == "" }},
		{line: `{"time":1735787045123456,"method":"GET","path":"/a"}`,
			check: func(x event.Exchange) bool { return x.Time.Equal(time.UnixMicro(1735787045123456)) }},
		{line: `{"time":"1735787045","method":"GET","path":"/a"}`,
			check: func(x event.Exchange) bool { return x.Time.Equal(time.Unix(1735787045, 0)) }},
		{line: `{"time":"02/Jan/2025:03:04:05 +0100","method":"GET","path":"/a","status":200.5}`,
			check: func(x event.Exchange) bool {
				return x.Time.Equal(time.Date(2025, 1, 2, 2, 4, 5, 0, time.UTC)) && x.Status == 0
			}},
		{line: `{"Method":"POST","METHOD":"GET","Path":"/a?x=1"}`,
			check: func(x event.Exchange) bool { return x.Method == "GET" && len(x.Params) == 1 }},
		{line: `{"method":"GET","path":"/a","request_time":"0.25"}`, check: func(x event.Exchange) bool { return x.LatencyMS == 250 }},
		{line: `{"method":"GET","path":"/a","request_time":"NaN","status":"x"}`, check: func(x event.Exchange) bool { return x.LatencyMS == 0 && x.Status == 0 }},
		{line: `{"method":"GET","path":"a"}`, reason: "request target is not a path"},
		{line: `{"method":"get it","path":"/a"}`, reason: "invalid method"},
		{line: `{"method":"GET"}`, reason: "no path"},
		{line: `{"path":"/a"}`, reason: "no method"},
		{line: `[1,2]`, reason: "not a JSON object"},
		{line: `null`, reason: "not a JSON object"},
	}
	for _, tt := range tests {
		im := &importer{o: Options{}, st: &Stats{}}
		x, reason := im.jsonLine(1, []byte(tt.line))
		if reason != tt.reason {
			t.Errorf("%s: reason %q, want %q", tt.line, reason, tt.reason)
			continue
		}
		if tt.check != nil && !tt.check(x) {
			t.Errorf("%s: event %+v", tt.line, x)
		}
	}
}
