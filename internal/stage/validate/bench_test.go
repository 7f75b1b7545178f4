package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// benchRequest returns a harness and a request factory for a POST with a
// JSON body of about 1 KiB: UK Open Banking's domestic-payments operation
// when the shared specs are present, the fixture's /payments otherwise.
func benchRequest(b *testing.B) (*harness, func() *http.Request, int) {
	b.Helper()
	file := filepath.Join(sharedSpecDir, "uk-open-banking-payment-initiation-v4.yaml")
	var h *harness
	var gr *genRequest
	bp := ""
	if files, _ := filepath.Glob(file); len(files) == 1 {
		doc := loadSharedSpec(b, file)
		h = newHarness(b, doc, defaults())
		op := doc.Operation("POST /domestic-payments")
		if op == nil {
			b.Fatal("POST /domestic-payments not in spec")
		}
		g := &gen{s: h.req.s}
		gr = g.request(op)
		bp = doc.BasePaths[0]
	} else {
		b.Logf("shared specs absent: benchmarking the fixture's POST /payments")
		doc := loadDoc(b, fixture)
		h = newHarness(b, doc, defaults())
		g := &gen{s: h.req.s}
		gr = g.request(doc.Operation("POST /payments"))
		bp = doc.BasePaths[0]
	}
	// Pad to about 1 KiB with free text the schema allows.
	if m, ok := gr.body.(map[string]any); ok {
		if data, ok := m["Data"].(map[string]any); ok {
			if ini, ok := data["Initiation"].(map[string]any); ok {
				ini["RemittanceInformation"] = map[string]any{"Unstructured": []any{strings.Repeat("Rent for March, flat 2B ", 5)}, "Structured": []any{}}
				ini["DebtorAccount"] = map[string]any{"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "11280001234567", "Name": "Ann O'Neil"}
			}
		}
	}
	proto := gr.build(b, bp)
	body, _ := io.ReadAll(proto.Body)
	mk := func() *http.Request {
		r := proto.Clone(context.Background())
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		return r
	}
	return h, mk, len(body)
}

// BenchmarkRequest compares pass-through (route stage, body read) with
// the validation stage on top of it; the ratio is validate/passthrough.
func BenchmarkRequest(b *testing.B) {
	h, mk, n := benchRequest(b)
	if d := h.req.Handle(context.Background(), h.exchange(b, mk())); d.Action != pipeline.Allow {
		b.Fatalf("benchmark request refused: %q", d.Rules)
	}
	b.Run("passthrough", func(b *testing.B) {
		b.SetBytes(int64(n))
		b.ReportAllocs()
		for b.Loop() {
			x := h.exchange(b, mk())
			_, _ = x.RequestBody()
		}
	})
	b.Run("validate", func(b *testing.B) {
		b.SetBytes(int64(n))
		b.ReportAllocs()
		for b.Loop() {
			x := h.exchange(b, mk())
			if d := h.req.Handle(context.Background(), x); d.Action != pipeline.Allow {
				b.Fatal(d.Rules)
			}
		}
	})
}

// BenchmarkResponse validates a ~1 KiB JSON response (schema and
// undocumented properties) against pass-through (body read only).
func BenchmarkResponse(b *testing.B) {
	h := newHarness(b, loadDoc(b, fixture), defaults())
	tags := []any{}
	for i := range 12 {
		tags = append(tags, map[string]any{"label": "household-" + strings.Repeat("x", i), "createdAt": "2026-01-02T03:04:05Z"})
	}
	body, _ := json.Marshal(map[string]any{"id": acct, "currency": "GBP", "nickname": "Bills", "balance": 1234.5,
		"owner": map[string]any{"name": "Ann O'Neil"}, "tags": tags, "metadata": map[string]any{"colour": "blue"}})
	mk := func() *http.Response { return upstream(200, "application/json", string(body)) }
	req := newReq("GET", base+"/accounts/"+acct, "", "")
	if d := h.resp.HandleResponse(context.Background(), h.exchange(b, req), mk()); d.Action != pipeline.Allow {
		b.Fatalf("benchmark response flagged: %s %q", d.Reason, d.Rules)
	}
	b.Run("passthrough", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			x := h.exchange(b, req)
			_, _, _ = x.ResponseBody(mk(), 1<<20)
		}
	})
	b.Run("validate", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			x := h.exchange(b, req)
			if d := h.resp.HandleResponse(context.Background(), x, mk()); d.Action != pipeline.Allow {
				b.Fatal(d.Rules)
			}
		}
	})
}
