package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
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
