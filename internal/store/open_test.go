package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenUnsupported(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"mysql://root:secret@host/db", "bulwark.db", "sqlite://", "postgres://u:p@h/db?pool_max_conns=0"} {
		s, err := Open(ctx, u)
		if !errors.Is(err, ErrUnsupportedURL) {
			if s != nil {
				_ = s.Close()
			}
			t.Errorf("Open(%q): err = %v, want ErrUnsupportedURL", u, err)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q): error leaks the password: %v", u, err)
		}
	}
}

func TestSQLiteMemory(t *testing.T) {
	ctx := context.Background()
	s := open(t, "sqlite://:memory:")
	if err := s.UpsertEndpoints(ctx, []Record{{ID: "a", Doc: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	eps, err := s.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 {
		t.Fatalf("endpoints = %+v", eps)
	}
}

func TestSQLiteRelativePathAndWAL(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := open(t, "sqlite://data/bulwark.db")
	if _, err := os.Stat(filepath.Join(dir, "data", "bulwark.db")); err != nil {
		t.Fatalf("database not created under the working directory: %v", err)
	}
	var mode string
	if err := s.(*sqliteStore).w.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var sync int
	if err := s.(*sqliteStore).w.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	const normal = 1
	if sync != normal {
		t.Errorf("synchronous = %d, want NORMAL (1)", sync)
	}
	// The read pool cannot write.
	if _, err := s.(*sqliteStore).r.Exec("DELETE FROM endpoints"); err == nil {
		t.Error("the read pool accepted a write")
	}
}

// BenchmarkUpsertEndpointsSQLite measures batches of 1000 endpoint
// records on a SQLite file: new endpoints (insert) and re-seen ones
// (update).
func BenchmarkUpsertEndpointsSQLite(b *testing.B) {
	const batch = 1000
	doc := []byte(`{"method":"GET","template":"/items/{id}","params":[{"name":"id","in":"path","type":"integer"}],"status":{"200":120,"404":3},"auth":["jwt"]}`)
	mk := func(prefix string, at time.Time) []Record {
		recs := make([]Record, batch)
		for i := range recs {
			recs[i] = Record{ID: fmt.Sprintf("%s-%04d", prefix, i), API: "shop", Key: fmt.Sprintf("GET /items%d/{id}", i), LastSeen: at, Doc: doc}
		}
		return recs
	}
	ctx := context.Background()
	b.Run("insert", func(b *testing.B) {
		s := open(b, schemeSQLite+filepath.Join(b.TempDir(), "bench.db"))
		n := 0
		for b.Loop() {
			if err := s.UpsertEndpoints(ctx, mk(fmt.Sprint(n), time.Now())); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/record")
	})
	b.Run("update", func(b *testing.B) {
		s := open(b, schemeSQLite+filepath.Join(b.TempDir(), "bench.db"))
		recs := mk("ep", time.Now())
		if err := s.UpsertEndpoints(ctx, recs); err != nil {
			b.Fatal(err)
		}
		n := 0
		for b.Loop() {
			if err := s.UpsertEndpoints(ctx, recs); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/record")
	})
}
