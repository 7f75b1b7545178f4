package waf

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

var fuzzContentTypes = []string{
	"application/json",
	"application/x-www-form-urlencoded",
	"multipart/form-data; boundary=xYzZY",
	"application/merge-patch+json",
	"text/plain",
	"",
}

// FuzzHandle feeds arbitrary request lines, header values and bodies to
// the stage: it must never panic, and every decision must be one the
// gateway can render without request data. Seeds: testdata/fuzz/FuzzHandle.
func FuzzHandle(f *testing.F) {
	s := pl1(f)
	reasons := map[string]bool{ReasonBlocked: true, ReasonUnparsable: true, ReasonTooLarge: true, ReasonUnreadable: true, ReasonError: true}
	f.Fuzz(func(t *testing.T, method, requestURI, header string, body []byte, kind uint8) {
		r := &http.Request{
			Method: method, RequestURI: requestURI, URL: &url.URL{Path: "/"},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{
				"User-Agent": {header},
				"X-Note":     {header},
				"Cookie":     {"session=" + header},
			},
			Host: "api.bank.example",
		}
		if u, err := url.ParseRequestURI(requestURI); err == nil {
			r.URL = u
		}
		if ct := fuzzContentTypes[int(kind)%len(fuzzContentTypes)]; ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if len(body) > 0 {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		x := &pipeline.Exchange{
			RequestID: "fuzz", Request: r, Operation: "POST /v1/payments",
			Params: pipeline.Params{{Name: "accountId", Value: header}},
		}
		d := s.Handle(context.Background(), x)
		if len(d.Rules) > MaxRules {
			t.Fatalf("%d rules", len(d.Rules))
		}
		switch d.Action {
		case pipeline.Stop:
			if d.Status < 400 || !reasons[d.Reason] || d.Detail == "" {
				t.Fatalf("bad stop %+v", d)
			}
		case pipeline.Annotate:
			if d.Reason != ReasonMatched || len(d.Rules) == 0 {
				t.Fatalf("bad annotation %+v", d)
			}
		default:
			if d.Reason != "" || len(d.Rules) != 0 {
				t.Fatalf("bad allow %+v", d)
			}
		}
		if len(header) >= 6 && strings.Contains(d.Detail+d.Reason, header) {
			t.Fatalf("decision echoes input: %+v", d)
		}
	})
}

// BenchmarkHandle measures the stage alone on benign traffic (the
// integrator divides by the pass-through figure in bench/).
func BenchmarkHandle(b *testing.B) {
	s := pl1(b)
	ctx := context.Background()
	hdr := func(r *http.Request) {
		r.Host = "api.bank.example"
		r.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
		r.Header.Set("Accept", "application/json")
		r.Header.Set("Accept-Language", "en-GB,en;q=0.9")
		r.Header.Set("Authorization", "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXN0LTQ4MjEiLCJzY29wZSI6ImFjY291bnRzIn0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU")
		r.Header.Set("X-Request-ID", "5b0e6a8e-6c1f-4f8e-9d0a-2f4b7d9c1e3a")
	}
	b.Run("GET_no_body", func(b *testing.B) {
		r, _ := http.NewRequest(http.MethodGet, "/v1/accounts/acc-7731/transactions?fromBookingDateTime=2025-01-01T00:00:00Z&toBookingDateTime=2025-03-31T23:59:59Z&limit=50", nil)
		r.RequestURI = r.URL.RequestURI()
		hdr(r)
		b.ReportAllocs()
		for b.Loop() {
			x := pipeline.Exchange{RequestID: "bench", Request: r, Operation: "GET /v1/accounts/{accountId}/transactions",
				Params: pipeline.Params{{Name: "accountId", Value: "acc-7731"}}}
			if d := s.Handle(ctx, &x); d.Action != pipeline.Allow {
				b.Fatalf("%+v", d)
			}
		}
	})
	b.Run("POST_json_1KiB", func(b *testing.B) {
		body := benchBody()
		r, _ := http.NewRequest(http.MethodPost, "/v1/payments", nil)
		r.RequestURI = "/v1/payments"
		hdr(r)
		r.Header.Set("Content-Type", "application/json")
		r.ContentLength = int64(len(body))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			r.Body = io.NopCloser(bytes.NewReader(body))
			x := pipeline.Exchange{RequestID: "bench", Request: r, Operation: "POST /v1/payments"}
			if d := s.Handle(ctx, &x); d.Action != pipeline.Allow {
				b.Fatalf("%+v", d)
			}
		}
	})
}

// benchBody is a realistic bulk payment initiation of exactly 1 KiB.
func benchBody() []byte {
	b := []byte(`{"payments":[{"instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":"O'Brien & Sons Ltd",` +
		`"creditorAccount":{"iban":"IE29AIBK93115212345678","bic":"AIBKIE2D"},"remittanceInformationUnstructured":"Rent - Flat 2/3, 12 Queen's Rd",` +
		`"endToEndIdentification":"E2E-482913377"},{"instructedAmount":{"amount":"99.10","currency":"EUR"},"creditorName":"D'Angelo Pizzeria",` +
		`"creditorAccount":{"iban":"DE89370400440532013000","bic":"COBADEFFXXX"},"remittanceInformationUnstructured":"Invoice #4471; thanks!",` +
		`"endToEndIdentification":"E2E-482913378"},{"instructedAmount":{"amount":"15.00","currency":"EUR"},"creditorName":"Zoë Saldaña-Pérez",` +
		`"creditorAccount":{"iban":"FR1420041010050500013M02606","bic":"PSSTFRPPPAR"},"remittanceInformationUnstructured":"Birthday gift :)",` +
		`"endToEndIdentification":"E2E-482913379"}],"batchReference":"Suppliers wk 14","requestedExecutionDate":"2025-05-01",` +
		`"debtorAccount":{"iban":"GB33BUKB20201555555555"},"purposeCode":"SUPP","notes":"`)
	for len(b) < 1024-2 {
		b = append(b, "Approved by finance. "...)
	}
	return append(b[:1024-2], `"}`...)
}
