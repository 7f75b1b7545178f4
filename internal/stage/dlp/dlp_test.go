package dlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

const cardsJSON = `{"accountId": "acc_1", "cardNumber": "4111 1111 1111 1111", "pan": 5555555555554444, "iban": "DE89370400440532013000", "owner": "Olivia O'Brien"}`

func newStage(t testing.TB, c config.Data) *Stage {
	t.Helper()
	if c.MaxScanBytes == 0 {
		c.MaxScanBytes = config.DefaultMaxScanBytes
	}
	s, err := New(Options{API: "bank", Config: c})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// response builds an upstream response as the proxy hands it to the
// response stages.
func response(ct, enc string, body []byte) *http.Response {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", ct)
	if enc != "" {
		rec.Header().Set("Content-Encoding", enc)
	}
	rec.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rec.Header().Set("ETag", `"v1"`)
	rec.WriteHeader(http.StatusOK)
	_, _ = rec.Write(body)
	return rec.Result()
}

func exchange() *pipeline.Exchange {
	return &pipeline.Exchange{API: "bank", Request: httptest.NewRequest(http.MethodGet, "/v1/cards", nil)}
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMaskJSON(t *testing.T) {
	s := newStage(t, config.Data{Mask: []string{"pan"}})
	x, resp := exchange(), response("application/json; charset=utf-8", "", []byte(cardsJSON))
	d := s.HandleResponse(context.Background(), x, resp)
	if d.Action != pipeline.Annotate || d.Reason != ReasonMasked || strings.Join(d.Rules, ",") != "pan" {
		t.Fatalf("decision %+v", d)
	}
	body := readBody(t, resp)
	want := strings.NewReplacer("4111 1111 1111 1111", "4111 11** **** 1111", "5555555555554444", "5555550000004444").Replace(cardsJSON)
	if string(body) != want {
		t.Fatalf("body\n got  %s\n want %s", body, want)
	}
	if !json.Valid(body) {
		t.Fatal("masked body is not JSON")
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) || resp.ContentLength != int64(len(body)) {
		t.Fatalf("Content-Length %q / %d for %d bytes", resp.Header.Get("Content-Length"), resp.ContentLength, len(body))
	}
	if strings.Join(x.ResponseClasses, ",") != "iban,pan" {
		t.Fatalf("ResponseClasses %v", x.ResponseClasses)
	}
	if resp.Header.Get("ETag") != "" {
		t.Fatal("the upstream ETag no longer describes the masked body")
	}
}

func TestMaskGzip(t *testing.T) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write([]byte(cardsJSON))
	_ = zw.Close()
	s := newStage(t, config.Data{Mask: []string{"pan", "iban"}})
	x, resp := exchange(), response("application/json", "gzip", z.Bytes())
	d := s.HandleResponse(context.Background(), x, resp)
	if d.Reason != ReasonMasked || strings.Join(d.Rules, ",") != "iban,pan" {
		t.Fatalf("decision %+v", d)
	}
	if resp.Header.Get("Content-Encoding") != "" {
		t.Fatal("the masked response must be sent decoded")
	}
	body := readBody(t, resp)
	if !json.Valid(body) || len(body) != len(cardsJSON) || bytes.Contains(body, []byte("DE89370400440532013000")) || !bytes.Contains(body, []byte("4111 11** **** 1111")) {
		t.Fatalf("body %s", body)
	}
}

func TestBlock(t *testing.T) {
	s := newStage(t, config.Data{Mask: []string{"pan"}, Block: []string{"iban"}})
	x, resp := exchange(), response("application/json", "", []byte(cardsJSON))
	d := s.HandleResponse(context.Background(), x, resp)
	if d.Action != pipeline.Stop || d.Status != http.StatusBadGateway || d.Reason != ReasonBlocked || d.Monitor ||
		strings.Join(d.Rules, ",") != "iban" || strings.Contains(d.Detail, "iban") || d.Detail != blockedDetail {
		t.Fatalf("decision %+v", d)
	}
	// Through the pipeline, the stop is enforced.
	x, resp = exchange(), response("application/json", "", []byte(cardsJSON))
	p := pipeline.New(nil, nil, []pipeline.ResponseStage{pipeline.NewByAPIResponse(StageName, map[string]pipeline.ResponseStage{"bank": s})})
	if stop := p.RunResponse(context.Background(), x, resp); stop == nil || !stop.Enforced || stop.Stage != StageName {
		t.Fatalf("pipeline stop %+v", stop)
	}
}

func TestMonitor(t *testing.T) {
	s := newStage(t, config.Data{Mask: []string{"pan"}, Block: []string{"iban"}, Mode: "monitor"})
	x, resp := exchange(), response("application/json", "", []byte(cardsJSON))
	d := s.HandleResponse(context.Background(), x, resp)
	if d.Action != pipeline.Stop || !d.Monitor || d.Reason != ReasonBlocked {
		t.Fatalf("decision %+v", d)
	}
	if len(x.Decisions) != 1 || x.Decisions[0].Reason != ReasonMaskMonitored || strings.Join(x.Decisions[0].Rules, ",") != "pan" {
		t.Fatalf("recorded %+v", x.Decisions)
	}
	if body := readBody(t, resp); string(body) != cardsJSON {
		t.Fatalf("monitor mode modified the body: %s", body)
	}

	// Mask only, API in monitor mode: nothing is modified.
	s = newStage(t, config.Data{Mask: []string{"pan"}})
	x, resp = exchange(), response("application/json", "", []byte(cardsJSON))
	x.Mode = pipeline.Monitor
	if d := s.HandleResponse(context.Background(), x, resp); d.Reason != ReasonMaskMonitored || d.Action != pipeline.Annotate {
		t.Fatalf("decision %+v", d)
	}
	if body := readBody(t, resp); string(body) != cardsJSON {
		t.Fatalf("monitor mode modified the body: %s", body)
	}
}

func TestTruncated(t *testing.T) {
	big := []byte(`{"cardNumber": "4111111111111111", "iban": "DE89370400440532013000", "filler": "` + strings.Repeat("x", 4096) + `"}`)
	s := newStage(t, config.Data{Mask: []string{"pan"}, MaxScanBytes: 1024})
	x, resp := exchange(), response("application/json", "", big)
	d := s.HandleResponse(context.Background(), x, resp)
	if d.Action != pipeline.Annotate || d.Reason != ReasonTruncated || strings.Join(d.Rules, ",") != "iban,pan" {
		t.Fatalf("decision %+v", d)
	}
	if body := readBody(t, resp); !bytes.Equal(body, big) {
		t.Fatal("a truncated scan must send the body on unchanged")
	}
	// Nothing found in the prefix: still recorded as not fully inspected.
	s0 := newStage(t, config.Data{MaxScanBytes: 1024})
	x, resp = exchange(), response("application/json", "", bytes.Repeat([]byte("x"), 2048))
	if d := s0.HandleResponse(context.Background(), x, resp); d.Reason != ReasonTruncated || len(d.Rules) != 0 {
		t.Fatalf("decision %+v", d)
	}
	// A class to block in the scanned prefix still stops.
	s = newStage(t, config.Data{Block: []string{"pan"}, MaxScanBytes: 1024})
	x, resp = exchange(), response("application/json", "", big)
	if d := s.HandleResponse(context.Background(), x, resp); d.Action != pipeline.Stop || d.Reason != ReasonBlocked {
		t.Fatalf("decision %+v", d)
	}
}

func TestObserveAndIgnore(t *testing.T) {
	s := newStage(t, config.Data{})
	x, resp := exchange(), response("text/plain", "", []byte("card 4111111111111111, mail a.b@bank.example.com"))
	d := s.HandleResponse(context.Background(), x, resp)
	if d.Action != pipeline.Annotate || d.Reason != ReasonObserved || strings.Join(d.Rules, ",") != "email,pan" {
		t.Fatalf("decision %+v", d)
	}
	// Non-textual bodies pass untouched and record nothing.
	x, resp = exchange(), response("image/png", "", []byte("4111111111111111"))
	if d := s.HandleResponse(context.Background(), x, resp); d.Action != pipeline.Allow || d.Reason != "" || x.ResponseClasses != nil {
		t.Fatalf("decision %+v classes %v", d, x.ResponseClasses)
	}
	// Observe limits the classes looked for.
	s = newStage(t, config.Data{Observe: []string{"email"}})
	x, resp = exchange(), response("application/problem+json", "", []byte(`{"pan": "4111111111111111"}`))
	if d := s.HandleResponse(context.Background(), x, resp); d.Action != pipeline.Allow || x.ResponseClasses != nil {
		t.Fatalf("decision %+v classes %v", d, x.ResponseClasses)
	}
}

func TestNotInspected(t *testing.T) {
	s := newStage(t, config.Data{Mask: []string{"pan"}})
	x, resp := exchange(), response("application/json", "br", []byte("\x1b\x00"))
	d := s.HandleResponse(context.Background(), x, resp)
	if d.Action != pipeline.Annotate || d.Reason != ReasonNotInspected || strings.Join(d.Rules, ",") != "encoding" {
		t.Fatalf("decision %+v", d)
	}
}

func TestRequestObserve(t *testing.T) {
	s := newStage(t, config.Data{Requests: true, Block: []string{"pan"}})
	x := exchange()
	x.Request = httptest.NewRequest(http.MethodPost, "/v1/payments", strings.NewReader(`{"iban": "GB82 WEST 1234 5698 7654 32", "cardNumber": "4111111111111111"}`))
	x.Request.Header.Set("Content-Type", "application/json")
	if d := s.Handle(context.Background(), x); d.Action != pipeline.Allow {
		t.Fatalf("request side must never stop: %+v", d)
	}
	if strings.Join(x.RequestClasses, ",") != "iban,pan" {
		t.Fatalf("RequestClasses %v", x.RequestClasses)
	}
	b, _ := io.ReadAll(x.Request.Body)
	if !bytes.Contains(b, []byte("4111111111111111")) {
		t.Fatal("the request body must reach the upstream unchanged")
	}
	// Off unless data.requests.
	s = newStage(t, config.Data{})
	x = exchange()
	x.Request = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"pan": "4111111111111111"}`))
	s.Handle(context.Background(), x)
	if x.RequestClasses != nil {
		t.Fatal("requests are scanned only with data.requests")
	}
}

func TestNewRejectsUnknownClass(t *testing.T) {
	if _, err := New(Options{API: "bank", Config: config.Data{Mask: []string{"passport"}}}); err == nil {
		t.Fatal("want an error for an unknown class")
	}
}

// stageBody is a 1 KiB JSON body of account data without sensitive values.
func stageBody() []byte {
	var body bytes.Buffer
	body.WriteString(`{"accountId":"acc_7f3a9c21","transactions":[`)
	for k := 0; body.Len() < 1000-170; k++ {
		if k > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"id":"5f0c7a1e-9b2d-4c3e-8a11-` + strconv.Itoa(100000000000+k) + `","amount":{"value":125.40,"currency":"EUR"},"bookedAt":"2026-11-29T10:15:00Z","name":"Olivia Smith","status":"BOOKED"}`)
	}
	body.WriteString(`]}`)
	return body.Bytes()
}

func BenchmarkStage(b *testing.B) {
	data := stageBody()
	s := newStage(b, config.Data{Mask: []string{"pan"}, Block: []string{"private_key"}})
	ctx := context.Background()
	hdr := http.Header{"Content-Type": {"application/json"}}
	var x pipeline.Exchange
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		x.Reset()
		resp := &http.Response{StatusCode: 200, Header: hdr, Body: io.NopCloser(bytes.NewReader(data)), ContentLength: int64(len(data))}
		if d := s.HandleResponse(ctx, &x, resp); d.Action != pipeline.Allow {
			b.Fatalf("decision %+v", d)
		}
	}
}

// BenchmarkStageBaseline is the part of BenchmarkStage any body-inspecting
// stage pays: reading the body once through Exchange.ResponseBody.
func BenchmarkStageBaseline(b *testing.B) {
	data := stageBody()
	hdr := http.Header{"Content-Type": {"application/json"}}
	var x pipeline.Exchange
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		x.Reset()
		resp := &http.Response{StatusCode: 200, Header: hdr, Body: io.NopCloser(bytes.NewReader(data)), ContentLength: int64(len(data))}
		if _, _, err := x.ResponseBody(resp, config.DefaultMaxScanBytes); err != nil {
			b.Fatal(err)
		}
	}
}
