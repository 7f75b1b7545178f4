package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
)

// t0 is a fixed reference time with microsecond precision, what both
// backends keep.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// runSuite is the behaviour every backend must show.
func runSuite(t *testing.T, b backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend)
	}{
		{"Endpoints", testEndpoints},
		{"FindingUpsertIdempotent", testFindingUpsertIdempotent},
		{"FindingsFilter", testFindingsFilter},
		{"Validation", testValidation},
		{"MarkEvents", testMarkEvents},
		{"MarkEventsConcurrent", testMarkEventsConcurrent},
		{"Prune", testPrune},
		{"Migrations", testMigrations},
		{"RestartSurvival", testRestartSurvival},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, b)
		})
	}
}

// open opens the database at u and closes it at the end of the test.
func open(t testing.TB, u string) Store {
	t.Helper()
	s, err := Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// mkFinding returns a valid finding.
func mkFinding(id, kind string, sev finding.Severity, last time.Time) finding.Finding {
	return finding.Finding{
		ID: id, Kind: kind, Severity: sev, Title: "title " + id, Detail: "detail",
		API: "shop", Endpoint: "GET /items/{id}", Evidence: map[string]any{"requests": float64(3)},
		Tags: []string{"gdpr:32"}, FirstSeen: last, LastSeen: last, Count: 1,
		Labels: map[string]string{"env": "test"},
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func testEndpoints(t *testing.T, b backend) {
	ctx := context.Background()
	s := open(t, b.newURL(t))
	recs := []Record{
		{ID: "b", API: "shop", Key: "GET /items", LastSeen: t0, Doc: []byte(`{"method":"GET","hits":1}`)},
		{ID: "a", API: "shop", Key: "POST /items", LastSeen: t0, Doc: []byte(`{"method":"POST"}`)},
	}
	if err := s.UpsertEndpoints(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// The same batch again changes nothing; a new version replaces.
	if err := s.UpsertEndpoints(ctx, recs); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Hour)
	if err := s.UpsertEndpoints(ctx, []Record{
		{ID: "b", API: "shop", Key: "GET /items", LastSeen: t0, Doc: []byte(`{"stale":true}`)},
		{ID: "b", API: "shop", Key: "GET /items", LastSeen: later, Doc: []byte(`{"method":"GET","hits":2}`)},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" {
		t.Fatalf("endpoints = %+v, want a and b in id order", got)
	}
	if !got[1].LastSeen.Equal(later) || got[1].Key != "GET /items" || got[1].API != "shop" {
		t.Errorf("b = %+v, want last_seen %v", got[1], later)
	}
	if !jsonEqual(t, got[1].Doc, []byte(`{"hits":2,"method":"GET"}`)) {
		t.Errorf("b doc = %s, want the last version", got[1].Doc)
	}
	if !got[0].LastSeen.Equal(t0) || got[0].LastSeen.Location() != time.UTC {
		t.Errorf("a last_seen = %v, want %v in UTC", got[0].LastSeen, t0)
	}
	if err := s.UpsertEndpoints(ctx, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

func testFindingUpsertIdempotent(t *testing.T, b backend) {
	ctx := context.Background()
	u := b.newURL(t)
	s := open(t, u)
	f := mkFinding(finding.MakeID(finding.KindShadow, "GET /x"), finding.KindShadow, finding.Medium, t0)
	if err := s.UpsertFindings(ctx, []finding.Finding{f}); err != nil {
		t.Fatal(err)
	}
	again := f
	again.LastSeen = t0.Add(time.Minute)
	again.FirstSeen = again.LastSeen
	again.Severity = finding.High
	again.Count = 2 // producers report running totals
	again.Evidence = map[string]any{"requests": float64(7)}
	if err := s.UpsertFindings(ctx, []finding.Finding{again}); err != nil {
		t.Fatal(err)
	}
	if n := b.queryInt(t, u, "SELECT COUNT(*) FROM findings"); n != 1 {
		t.Fatalf("%d rows after upserting the same finding twice, want 1", n)
	}
	got, err := s.Findings(ctx, FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := again
	want.FirstSeen, want.Count = t0, 2
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("findings = %+v\nwant %+v", got, want)
	}
	// An older re-detection neither moves last_seen back nor lowers the
	// count; a larger running total raises it.
	old := f
	old.LastSeen, old.FirstSeen, old.Count = t0.Add(-time.Hour), t0.Add(-time.Hour), 3
	if err := s.UpsertFindings(ctx, []finding.Finding{old}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Findings(ctx, FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if g := got[0]; g.Count != 3 || !g.LastSeen.Equal(again.LastSeen) || !g.FirstSeen.Equal(old.FirstSeen) {
		t.Errorf("after an older detection: count %d first %v last %v", g.Count, g.FirstSeen, g.LastSeen)
	}
	// Duplicates within one batch (a redelivered batch) do not inflate the count.
	dup := mkFinding("dup", finding.KindZombie, finding.Low, t0)
	if err := s.UpsertFindings(ctx, []finding.Finding{dup, dup, dup}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Findings(ctx, FindingFilter{Kind: finding.KindZombie})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Count != 1 {
		t.Errorf("batch of the same finding thrice = %+v, want one with count 1", got)
	}
}

func testFindingsFilter(t *testing.T, b backend) {
	ctx := context.Background()
	s := open(t, b.newURL(t))
	fs := []finding.Finding{
		mkFinding("f1", finding.KindShadow, finding.Low, t0),
		mkFinding("f2", finding.KindShadow, finding.High, t0.Add(2*time.Minute)),
		mkFinding("f3", finding.KindEnumeration, finding.Critical, t0.Add(time.Minute)),
		mkFinding("f4", finding.KindEnumeration, finding.Info, t0.Add(3*time.Minute)),
		mkFinding("f5", finding.KindShadow, finding.Medium, t0.Add(2*time.Minute)),
	}
	if err := s.UpsertFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	ids := func(f FindingFilter) []string {
		t.Helper()
		got, err := s.Findings(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, g := range got {
			out = append(out, g.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    FindingFilter
		want []string
	}{
		{"all newest first, ties by id", FindingFilter{}, []string{"f4", "f2", "f5", "f3", "f1"}},
		{"kind", FindingFilter{Kind: finding.KindShadow}, []string{"f2", "f5", "f1"}},
		{"min severity", FindingFilter{MinSeverity: finding.High}, []string{"f2", "f3"}},
		{"since", FindingFilter{Since: t0.Add(2 * time.Minute)}, []string{"f4", "f2", "f5"}},
		{"limit", FindingFilter{Limit: 2}, []string{"f4", "f2"}},
		{"combined", FindingFilter{Kind: finding.KindShadow, MinSeverity: finding.Medium, Since: t0.Add(time.Minute), Limit: 1}, []string{"f2"}},
		{"none", FindingFilter{Kind: "nope"}, []string{}},
	} {
		if got := ids(tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func testValidation(t *testing.T, b backend) {
	ctx := context.Background()
	s := open(t, b.newURL(t))
	for name, f := range map[string]finding.Finding{
		"no id":       mkFinding("", finding.KindShadow, finding.Low, t0),
		"no kind":     mkFinding("x", "", finding.Low, t0),
		"no severity": mkFinding("x", finding.KindShadow, 0, t0),
	} {
		good := mkFinding("good", finding.KindShadow, finding.Low, t0)
		if err := s.UpsertFindings(ctx, []finding.Finding{good, f}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if got, _ := s.Findings(ctx, FindingFilter{}); len(got) != 0 {
		t.Errorf("a rejected batch stored %d findings", len(got))
	}
	if err := s.UpsertEndpoints(ctx, []Record{{ID: "x", Doc: []byte("{not json")}}); err == nil {
		t.Error("invalid JSON document: no error")
	}
	if err := s.UpsertEndpoints(ctx, []Record{{Key: "GET /x", Doc: []byte("{}")}}); err == nil {
		t.Error("empty endpoint id: no error")
	}
	// Defaults: zero times become now, zero count one, nil doc null.
	before := time.Now().Add(-time.Second)
	f := finding.Finding{ID: "d", Kind: finding.KindOrphan, Severity: finding.Info}
	if err := s.UpsertFindings(ctx, []finding.Finding{f}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Findings(ctx, FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Count != 1 || got[0].LastSeen.Before(before) || !got[0].FirstSeen.Equal(got[0].LastSeen) {
		t.Errorf("defaults: %+v", got)
	}
	if err := s.UpsertEndpoints(ctx, []Record{{ID: "n"}}); err != nil {
		t.Fatal(err)
	}
	eps, err := s.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || string(eps[0].Doc) != "null" || eps[0].LastSeen.Before(before) {
		t.Errorf("endpoint defaults: %+v", eps)
	}
}

func testMarkEvents(t *testing.T, b backend) {
	ctx := context.Background()
	u := b.newURL(t)
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	mark := func(s Store, ids ...string) []string {
		t.Helper()
		fresh, err := s.MarkEvents(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if got := mark(s, "e3", "e1", "e2", "e1"); !reflect.DeepEqual(got, []string{"e3", "e1", "e2"}) {
		t.Errorf("first mark = %v, want all in input order, once", got)
	}
	if got := mark(s, "e2", "e4", "e3", "e5"); !reflect.DeepEqual(got, []string{"e4", "e5"}) {
		t.Errorf("second mark = %v, want [e4 e5]", got)
	}
	if got := mark(s, "", "e6", ""); !reflect.DeepEqual(got, []string{"", "e6"}) {
		t.Errorf("empty id = %v, want it fresh once, unrecorded", got)
	}
	if got := mark(s); len(got) != 0 {
		t.Errorf("no ids = %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, u)
	if got := mark(s, "e1", "e6", "e7", ""); !reflect.DeepEqual(got, []string{"e7", ""}) {
		t.Errorf("after reopen = %v, want [e7 \"\"]", got)
	}
}

func testMarkEventsConcurrent(t *testing.T, b backend) {
	ctx := context.Background()
	u := b.newURL(t)
	shared := open(t, u)
	other := open(t, u) // a second handle: another process or replica
	const (
		workers = 4
		ids     = 400
		chunk   = 50
	)
	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		wg    sync.WaitGroup
		errCh = make(chan error, workers)
	)
	for w := range workers {
		s := shared
		if w%2 == 1 {
			s = other
		}
		wg.Go(func() {
			// Every worker marks every id, each starting elsewhere and
			// with reversed chunks for odd workers: heavy overlap in
			// opposite orders.
			all := make([]string, ids)
			for i := range all {
				all[i] = fmt.Sprintf("ev-%04d", (i+w*ids/workers)%ids)
			}
			if w%2 == 1 {
				sort.Sort(sort.Reverse(sort.StringSlice(all)))
			}
			for i := 0; i < ids; i += chunk {
				fresh, err := s.MarkEvents(ctx, all[i:i+chunk])
				if err != nil {
					errCh <- err
					return
				}
				mu.Lock()
				for _, id := range fresh {
					seen[id]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errCh)
	for err := range errCh {
		t.Fatal(err)
	}
	if len(seen) != ids {
		t.Errorf("%d ids fresh, want %d", len(seen), ids)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s fresh %d times", id, n)
		}
	}
}

func testPrune(t *testing.T, b backend) {
	ctx := context.Background()
	u := b.newURL(t)
	s := open(t, u)
	if err := s.UpsertEndpoints(ctx, []Record{
		{ID: "old", LastSeen: t0.Add(-time.Hour), Doc: []byte(`{}`)},
		{ID: "new", LastSeen: t0, Doc: []byte(`{}`)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertFindings(ctx, []finding.Finding{
		mkFinding("old", finding.KindShadow, finding.Low, t0.Add(-time.Hour)),
		mkFinding("new", finding.KindShadow, finding.Low, t0),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkEvents(ctx, []string{"ev"}); err != nil {
		t.Fatal(err)
	}
	// Event ids are stamped now: a cut at t0 keeps them.
	if err := s.Prune(ctx, t0); err != nil {
		t.Fatal(err)
	}
	eps, err := s.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := s.Findings(ctx, FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].ID != "new" || len(fs) != 1 || fs[0].ID != "new" {
		t.Errorf("after prune: endpoints %+v, findings %+v; want only \"new\"", eps, fs)
	}
	if n := b.queryInt(t, u, "SELECT COUNT(*) FROM seen_events"); n != 1 {
		t.Errorf("%d event ids after prune at t0, want 1", n)
	}
	if err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.MarkEvents(ctx, []string{"ev"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 1 {
		t.Errorf("an event id pruned is fresh again: got %v", fresh)
	}
	if eps, _ := s.Endpoints(ctx); len(eps) != 0 {
		t.Errorf("endpoints left after pruning everything: %+v", eps)
	}
}

func testMigrations(t *testing.T, b backend) {
	ctx := context.Background()
	u := b.newURL(t)
	latest := len(b.migrations)
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	const versionQ = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
	const rowsQ = "SELECT COUNT(*) FROM schema_migrations"
	if v, n := b.queryInt(t, u, versionQ), b.queryInt(t, u, rowsQ); v != latest || n != latest {
		t.Fatalf("after Open: version %d with %d rows, want %d", v, n, latest)
	}
	// Re-opening an up-to-date database applies nothing.
	s = open(t, u)
	if n := b.queryInt(t, u, rowsQ); n != latest {
		t.Errorf("after reopen: %d migration rows, want %d", n, latest)
	}
	// An upgrade applies only the new step, once.
	next := append(append([]migration(nil), b.migrations...),
		migration{version: latest + 1, statements: []string{"CREATE TABLE upgrade_probe (x integer)"}})
	if err := b.migrate(t, s, next); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if err := b.migrate(t, s, next); err != nil {
		t.Fatalf("upgrade again: %v", err)
	}
	if v := b.queryInt(t, u, versionQ); v != latest+1 {
		t.Errorf("after upgrade: version %d, want %d", v, latest+1)
	}
	if n := b.queryInt(t, u, "SELECT COUNT(*) FROM upgrade_probe"); n != 0 {
		t.Errorf("upgrade_probe has %d rows", n)
	}
	// A failing migration leaves the schema as it was.
	bad := append(append([]migration(nil), next...),
		migration{version: latest + 2, statements: []string{"CREATE TABLE half_done (x integer)", "THIS IS NOT SQL"}})
	if err := b.migrate(t, s, bad); err == nil {
		t.Error("a failing migration reported success")
	}
	if v := b.queryInt(t, u, versionQ); v != latest+1 {
		t.Errorf("after a failed migration: version %d, want %d", v, latest+1)
	}
	// Now the database is newer than this build.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(ctx, u); !errors.Is(err, ErrSchemaTooNew) {
		if err == nil {
			_ = s2.Close()
		}
		t.Errorf("Open of a newer database: err = %v, want ErrSchemaTooNew", err)
	}
	// A broken migration list is refused before touching anything.
	if _, err := pendingMigrations(0, []migration{{version: 2}}); err == nil {
		t.Error("a list not starting at 1 was accepted")
	}
}

func testRestartSurvival(t *testing.T, b backend) {
	ctx := context.Background()
	u := b.newURL(t)
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	rec := Record{ID: "ep", API: "shop", Key: "GET /items/{id}", LastSeen: t0, Doc: []byte(`{"params":["id"]}`)}
	f := mkFinding("f", finding.KindUnauthSensitive, finding.Critical, t0)
	if err := s.UpsertEndpoints(ctx, []Record{rec}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertFindings(ctx, []finding.Finding{f}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkEvents(ctx, []string{"ev-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, u)
	eps, err := s.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].ID != rec.ID || eps[0].Key != rec.Key || !eps[0].LastSeen.Equal(t0) || !jsonEqual(t, eps[0].Doc, rec.Doc) {
		t.Errorf("endpoints after restart = %+v", eps)
	}
	fs, err := s.Findings(ctx, FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || !reflect.DeepEqual(fs[0], f) {
		t.Errorf("findings after restart = %+v\nwant %+v", fs, f)
	}
	fresh, err := s.MarkEvents(ctx, []string{"ev-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 0 {
		t.Errorf("an event marked before the restart is fresh again")
	}
}
