package collector

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
)

// siem is a fake SIEM HTTP collector that records what it received.
type siem struct {
	mu      sync.Mutex
	docs    []map[string]any
	auth    []string
	fail    atomic.Int32 // answer 503 to this many requests first
	posts   atomic.Int32
	release chan struct{} // when not nil, each request waits for it
}

func (s *siem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.posts.Add(1)
	if s.release != nil {
		<-s.release
	}
	if s.fail.Add(-1) >= 0 {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var docs []map[string]any
	b, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &docs) != nil {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.docs = append(s.docs, docs...)
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.mu.Unlock()
}

func (s *siem) received() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.docs...)
}

// TestFindingsWebhook: detector findings and the inventory's spec-diff
// findings reach a SIEM's HTTP collector as OCSF, with the token; a
// spec-diff finding is sent once, not at every flush.
func TestFindingsWebhook(t *testing.T) {
	s := &siem{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Detect.FindingsWebhook = &config.FindingsWebhook{URL: srv.URL, Token: "hec-token", Scheme: "Splunk", Timeout: config.Duration(time.Second)}
	c, err := New(ctx, Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// An enumeration (detector) and an anonymous call returning card
	// numbers (inventory: unauthenticated sensitive data).
	batch := walk("walker", 40, now.Add(-5*time.Second))
	batch = append(batch, event.Exchange{ID: "anon-1", Time: now, API: "bank", Method: "GET", Path: "/cards/export", Status: 200,
		Auth: event.AuthNone, ResponseClasses: []string{"pan"}})
	if err := c.Handle(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, d := range s.received() {
		if d["class_uid"] != float64(2004) {
			t.Fatalf("not an OCSF detection finding: %v", d)
		}
		fi, _ := d["finding_info"].(map[string]any)
		uid, _ := fi["uid"].(string)
		kinds[uid[:len(uid)-17]]++ // the uid is KIND-<16 hex>
	}
	if kinds["bola_enumeration"] == 0 || kinds[finding.KindUnauthSensitive] != 1 {
		t.Fatalf("received %v: want the enumeration and the unauthenticated-PAN finding once", kinds)
	}
	for _, a := range s.auth {
		if a != "Splunk hec-token" {
			t.Fatalf("Authorization %q", a)
		}
	}
	if st := c.Stats(); st.WebhookSent != uint64(len(s.received())) || st.WebhookDropped != 0 {
		t.Fatalf("stats %+v, received %d", st, len(s.received()))
	}
}

// TestWebhookRetriesThenDrops: a failing SIEM gets a few attempts per
// batch, then the batch is dropped and counted; a SIEM that recovers
// within the attempts loses nothing.
func TestWebhookRetriesThenDrops(t *testing.T) {
	f := []finding.Finding{{ID: "shadow_endpoint-0123456789abcdef", Kind: finding.KindShadow, Severity: finding.Medium}}

	flaky := &siem{}
	flaky.fail.Store(webhookAttempts - 1)
	srv := httptest.NewServer(flaky)
	defer srv.Close()
	w := newWebhook(WebhookOptions{URL: srv.URL, Timeout: time.Second, Backoff: time.Millisecond})
	w.Write(f)
	_ = w.Close()
	if w.sent.Load() != 1 || w.dropped.Load() != 0 || len(flaky.received()) != 1 || flaky.posts.Load() != webhookAttempts {
		t.Fatalf("recovering SIEM: sent %d dropped %d received %d posts %d", w.sent.Load(), w.dropped.Load(), len(flaky.received()), flaky.posts.Load())
	}

	down := &siem{}
	down.fail.Store(1 << 20)
	srv2 := httptest.NewServer(down)
	defer srv2.Close()
	w2 := newWebhook(WebhookOptions{URL: srv2.URL, Timeout: time.Second, Backoff: time.Millisecond})
	w2.Write(f)
	_ = w2.Close()
	if w2.sent.Load() != 0 || w2.dropped.Load() != 1 || down.posts.Load() != webhookAttempts {
		t.Fatalf("failing SIEM: sent %d dropped %d posts %d", w2.sent.Load(), w2.dropped.Load(), down.posts.Load())
	}
}

// TestWebhookNeverBlocks: a SIEM that hangs never holds up Write; past
// the queue, findings are dropped and counted.
func TestWebhookNeverBlocks(t *testing.T) {
	hung := &siem{release: make(chan struct{})}
	srv := httptest.NewServer(hung)
	defer srv.Close()
	defer close(hung.release)
	w := newWebhook(WebhookOptions{URL: srv.URL, Timeout: 100 * time.Millisecond, Backoff: time.Millisecond})
	fs := make([]finding.Finding, 2*webhookQueue+webhookBatch)
	for i := range fs {
		fs[i] = finding.Finding{ID: "x", Kind: finding.KindShadow}
	}
	start := time.Now()
	w.Write(fs)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Write took %s", d)
	}
	if w.dropped.Load() < webhookQueue {
		t.Fatalf("dropped %d, want at least %d", w.dropped.Load(), webhookQueue)
	}
	w.cancel() // stop retrying against the hung SIEM
}
