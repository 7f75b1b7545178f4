package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/detect"
	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/store"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := &config.Config{}
	cfg.Store.URL = "sqlite://" + filepath.Join(dir, "inv.db")
	cfg.Inventory.Retention = config.Duration(24 * time.Hour)
	cfg.Inventory.OrphanWindow = config.Duration(time.Hour)
	cfg.Inventory.FlushInterval = config.Duration(time.Second)
	cfg.Detect.Window = config.Duration(time.Minute)
	cfg.Detect.MaxDistinctObjects = 20
	cfg.Detect.CoolDown = config.Duration(time.Minute)
	cfg.Detect.FindingsFile = filepath.Join(dir, "findings.jsonl")
	return cfg
}

func walk(subject string, n int, t0 time.Time) []event.Exchange {
	var out []event.Exchange
	for i := range n {
		out = append(out, event.Exchange{
			ID: fmt.Sprintf("%s-%d", subject, i), Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), API: "bank",
			Method: "GET", Path: fmt.Sprintf("/accounts/%d", 100000+i), Status: 403, Auth: event.AuthJWT, Subject: subject,
			Operation: "GET /accounts/{accountId}", ObjectIDs: []string{fmt.Sprintf("h%d", i)}, ObjectParam: "accountId",
			Reasons: []string{"authorize:object_denied"}, Blocked: true,
		})
	}
	return out
}

// TestHandleDedupFlushRestore: a redelivered batch is ingested once, the
// inventory survives a restart through the store, and a detection reaches
// the store and the OCSF file.
func TestHandleDedupFlushRestore(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	now := time.Now()
	c, err := New(ctx, Options{Config: cfg, Dedup: true})
	if err != nil {
		t.Fatal(err)
	}
	batch := walk("walker", 40, now.Add(-5*time.Second))
	for range 2 { // the same batch delivered twice
		if err := c.Handle(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if s := c.Stats(); s.Ingested != 40 || s.Duplicates != 40 || s.Findings == 0 {
		t.Fatalf("stats %+v: want 40 ingested, 40 duplicates, a finding", s)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	eps := c.Inventory().Endpoints()
	if len(eps) != 1 || eps[0].Count != 40 {
		t.Fatalf("endpoints %+v", eps)
	}
	fs, err := c.Store().Findings(ctx, store.FindingFilter{Kind: "bola_enumeration"})
	if err != nil || len(fs) != 1 {
		t.Fatalf("stored enumeration findings: %v %v", fs, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cfg.Detect.FindingsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["class_uid"] != float64(2004) {
			t.Fatalf("findings file line is not an OCSF detection finding: %s", sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("no finding in the OCSF file")
	}

	// Restart: the inventory comes back from the store; the old batch is
	// still recognised as seen.
	c2, err := New(ctx, Options{Config: cfg, Dedup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if eps := c2.Inventory().Endpoints(); len(eps) != 1 || eps[0].Count != 40 || !strings.Contains(eps[0].Template, "{") {
		t.Fatalf("after restart: %+v", eps)
	}
	if err := c2.Handle(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if s := c2.Stats(); s.Ingested != 0 || s.Duplicates != 40 {
		t.Fatalf("after restart, a redelivered batch: %+v", s)
	}
}

// fakeCoolDowns records what the collector publishes; block makes
// Publish wait until it is closed, fail makes it fail.
type fakeCoolDowns struct {
	mu    sync.Mutex
	calls [][]detect.CoolDown
	block chan struct{}
	fail  bool
}

func (f *fakeCoolDowns) Publish(cds []detect.CoolDown) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(cds))
	if f.fail {
		return errors.New("nats: connection closed")
	}
	return nil
}

func (f *fakeCoolDowns) snapshot() [][]detect.CoolDown {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// waitCalls polls until cond holds for the calls or 10s pass.
func waitCalls(t *testing.T, f *fakeCoolDowns, what string, cond func([][]detect.CoolDown) bool) [][]detect.CoolDown {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		calls := f.snapshot()
		if cond(calls) {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; calls: %+v", what, calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCoolDownsPublished: in enforce mode the collector publishes a
// batch's new cool-down right after it and the whole table every refresh;
// in monitor mode nothing.
func TestCoolDownsPublished(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		publish bool
	}{{"enforce", true}, {"monitor", false}, {"", false}} {
		t.Run("mode "+tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cfg := testConfig(t)
			cfg.Detect.Mode = tc.mode
			pub := &fakeCoolDowns{}
			c, err := New(ctx, Options{Config: cfg, CoolDowns: pub, CoolDownRefresh: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			done := make(chan struct{})
			go func() { defer close(done); c.Run(ctx) }()
			defer func() { cancel(); <-done }()
			if err := c.Handle(ctx, walk("walker", 40, time.Now().Add(-5*time.Second))); err != nil {
				t.Fatal(err)
			}
			until, ok := c.Detector().CoolingDown("walker", "")
			if !ok {
				t.Fatal("the walker is not on cool-down in the detector")
			}
			if !tc.publish {
				if c.coolPub != nil || c.coolCh != nil {
					t.Fatalf("mode %q: cool-down publishing is on", tc.mode)
				}
				if calls := pub.snapshot(); len(calls) != 0 {
					t.Fatalf("mode %q published %+v", tc.mode, calls)
				}
				return
			}
			has := func(call []detect.CoolDown) bool {
				return len(call) == 1 && call[0].Subject == "walker" && call[0].Client == "" && call[0].Until.Equal(until)
			}
			// The batch's cool-down, then at least two full tables with it.
			waitCalls(t, pub, "three publishes of the walker's cool-down", func(calls [][]detect.CoolDown) bool {
				n := 0
				for _, call := range calls {
					if has(call) {
						n++
					}
				}
				return n >= 3
			})
			for _, call := range pub.snapshot() {
				if len(call) != 0 && !has(call) {
					t.Fatalf("published %+v; want only the walker until %v", call, until)
				}
			}
			if s := c.Stats(); s.CoolDownsPublished < 3 || s.CoolDownsFailed != 0 || s.CoolDownsDropped != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestCoolDownPublishNeverBlocksHandle: a publisher stuck for good or
// failing costs counted drops and failures, never a stalled Handle.
func TestCoolDownPublishNeverBlocksHandle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := testConfig(t)
	cfg.Detect.Mode = "enforce"
	cfg.Detect.FindingsFile = ""
	pub := &fakeCoolDowns{block: make(chan struct{}), fail: true}
	c, err := New(ctx, Options{Config: cfg, CoolDowns: pub, CoolDownRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	start := time.Now()
	n := 2 * coolDownQueue
	for i := range n {
		// A new walker each batch: each batch makes a new cool-down.
		if err := c.Handle(ctx, walk(fmt.Sprintf("walker-%d", i), 25, time.Now().Add(-3*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("%d batches took %s with a stuck publisher", n, d)
	}
	if s := c.Stats(); s.CoolDownsDropped < uint64(n-coolDownQueue-1) {
		t.Fatalf("stats %+v: want at least %d dropped", s, n-coolDownQueue-1)
	}
	close(pub.block) // NATS answers again, with errors
	cancel()
	<-done
	if s := c.Stats(); s.CoolDownsFailed == 0 || s.CoolDownsPublished != 0 {
		t.Fatalf("stats %+v: want failures counted", s)
	}
}
