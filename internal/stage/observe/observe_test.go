package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

func ident(s string) string { return "h(" + s + ")" }

func TestSampler(t *testing.T) {
	s := NewSampler(2, 3)
	x := &pipeline.Exchange{API: "bank", Operation: "GET /a", Request: httptest.NewRequest("GET", "/a", nil)}
	var got []bool
	for range 9 {
		got = append(got, s.Sample(x))
	}
	want := []bool{true, true, false, false, true, false, false, true, false}
	if !slices.Equal(got, want) {
		t.Fatalf("samples %v, want %v", got, want)
	}
	if !s.Sample(&pipeline.Exchange{API: "bank", Operation: "GET /b", Request: x.Request}) {
		t.Fatal("a new endpoint is not sampled")
	}
	only := NewSampler(1, 0)
	if !only.Sample(x) || only.Sample(x) || only.Sample(x) {
		t.Fatal("every 0 must sample only the first")
	}
	// Bounded: past maxSampleKeys the counts start again.
	b := NewSampler(1, 0)
	for i := range maxSampleKeys + 10 {
		b.count(uint64(i))
	}
	if len(b.seen) > maxSampleKeys {
		t.Fatalf("%d keys kept", len(b.seen))
	}
}

func TestSampleKey(t *testing.T) {
	s := NewSampler(1, 0)
	key := func(api, op, method, path string) uint64 {
		return s.sampleKey(&pipeline.Exchange{API: api, Operation: op, Request: httptest.NewRequest(method, path, nil)})
	}
	same := [][2]uint64{
		{key("bank", "GET /accounts/{id}", "GET", "/accounts/1"), key("bank", "GET /accounts/{id}", "GET", "/accounts/2")},
		{key("bank", "", "GET", "/accounts/42/transactions"), key("bank", "", "GET", "/accounts/7/transactions")},
		{key("bank", "", "GET", "/users/alice-the-very-long-handle-name"), key("bank", "", "GET", "/users/bob-has-an-even-longer-handle")},
	}
	for i, p := range same {
		if p[0] != p[1] {
			t.Errorf("pair %d: one endpoint, two keys", i)
		}
	}
	differ := [][2]uint64{
		{key("bank", "", "GET", "/accounts/1"), key("bank", "", "POST", "/accounts/1")},
		{key("bank", "", "GET", "/accounts"), key("cards", "", "GET", "/accounts")},
		{key("bank", "", "GET", "/a/b"), key("bank", "", "GET", "/ab")},
		{key("bank", "", "GET", "/a//b/"), key("bank", "", "GET", "/a/b")},
		{key("bank", "GET /x", "GET", "/x"), key("bank", "GET /y", "GET", "/x")},
	}
	for i, p := range differ {
		if p[0] == p[1] {
			t.Errorf("pair %d: two endpoints, one key", i)
		}
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "application/problem+json": true,
		"application/vnd.api+json": true, "text/json": false, "text/html": false, "": false, "application/json;;": false,
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v", ct, got)
		}
	}
}

func response(status int, ct, enc, body string, length int64) *http.Response {
	h := http.Header{}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	if enc != "" {
		h.Set("Content-Encoding", enc)
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: length}
}

func TestReturnedIDs(t *testing.T) {
	const body = `{"data":[{"id":"a"},{"id":"b"}]}`
	n := int64(len(body))
	tests := []struct {
		name string
		anon bool
		resp *http.Response
		want []string
	}{
		{"json list", false, response(200, "application/json", "", body, n), []string{"h(a)", "h(b)"}},
		{"chunked", false, response(200, "application/json", "", body, -1), []string{"h(a)", "h(b)"}},
		{"anonymous", true, response(200, "application/json", "", body, n), nil},
		{"error status", false, response(404, "application/json", "", body, n), nil},
		{"not json", false, response(200, "text/plain", "", body, n), nil},
		{"gzip not decoded", false, response(200, "application/json", "gzip", body, n), nil},
		{"too long", false, response(200, "application/json", "", body, MaxResponseBytes+1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{ReturnedIDs: true, Hash: ident}, NewSampler(0, 0))
			x := &pipeline.Exchange{Request: httptest.NewRequest("GET", "/x", nil)}
			if !tt.anon {
				x.Identity = &identity.Identity{Subject: "alice"}
			}
			enc := tt.resp.Header.Get("Content-Encoding")
			if d := s.HandleResponse(context.Background(), x, tt.resp); d.Action != pipeline.Continue.Action {
				t.Fatalf("decision %+v", d)
			}
			if !slices.Equal(x.ReturnedIDs, tt.want) {
				t.Fatalf("ReturnedIDs %q, want %q", x.ReturnedIDs, tt.want)
			}
			if x.ResponseSchema != nil {
				t.Fatal("a schema without a sample")
			}
			// The client still gets the whole body, unchanged.
			got, _ := io.ReadAll(tt.resp.Body)
			if string(got) != body || tt.resp.Header.Get("Content-Encoding") != enc {
				t.Fatalf("body sent on: %q, encoding %q", got, tt.resp.Header.Get("Content-Encoding"))
			}
		})
	}
}

func TestSchemasSampled(t *testing.T) {
	s := New(Options{Schemas: true, MaxRequestBytes: 1024}, NewSampler(1, 0))
	run := func(body string, length int64) *pipeline.Exchange {
		r := httptest.NewRequest("POST", "/payments", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.ContentLength = length
		x := &pipeline.Exchange{API: "bank", Operation: "POST /payments", Request: r}
		s.Handle(context.Background(), x)
		s.HandleResponse(context.Background(), x, response(201, "application/json", "", `{"paymentId":"p1","status":"ok"}`, 33))
		// The upstream still reads the whole request body.
		if b, _ := io.ReadAll(x.Request.Body); string(b) != body {
			t.Fatalf("request body forwarded as %q", b)
		}
		return x
	}
	body := `{"amount":"1.00","to":{"iban":"GB33"}}`
	x := run(body, int64(len(body)))
	if !x.SampleBodies || x.RequestSchema == nil || x.ResponseSchema == nil {
		t.Fatalf("first exchange not sampled: %+v", x)
	}
	rs, _ := json.Marshal(x.RequestSchema)
	if !bytes.Contains(rs, []byte(`"iban":{"type":"string"}`)) || bytes.Contains(rs, []byte("GB33")) {
		t.Fatalf("request schema %s", rs)
	}
	if len(x.BodyParams) != 2 || x.BodyParams[0].Name != "amount" || x.BodyParams[0].In != "body" {
		t.Fatalf("body params %+v", x.BodyParams)
	}
	if y := run(body, int64(len(body))); y.SampleBodies || y.RequestSchema != nil || y.ResponseSchema != nil {
		t.Fatalf("second exchange sampled: %+v", y)
	}
	// Over the request limit, or of unknown length: not read.
	big := New(Options{Schemas: true, MaxRequestBytes: 10}, NewSampler(5, 0))
	for _, length := range []int64{int64(len(body)), -1} {
		r := httptest.NewRequest("POST", "/payments", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.ContentLength = length
		x := &pipeline.Exchange{Request: r}
		big.Handle(context.Background(), x)
		if x.RequestSchema != nil {
			t.Fatalf("length %d: body read", length)
		}
		if b, _ := io.ReadAll(r.Body); string(b) != body {
			t.Fatalf("length %d: body forwarded as %q", length, b)
		}
	}
}
