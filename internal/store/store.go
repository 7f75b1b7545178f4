// Package store persists what Bulwark learns at runtime — the endpoint
// inventory and the findings — together with the ids of the exchange
// events already processed, so that an at-least-once transport is applied
// exactly once.
//
// SQLite is the default (one node, one file, no server to run);
// PostgreSQL serves a multi-node deployment. Both are reached through
// Open with a URL and behave the same: the behaviour suite in this
// package runs against each.
//
// Times are stored with microsecond precision and returned in UTC.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
)

// Store persists the inventory, the findings and the processed event ids.
// Implementations are safe for concurrent use.
type Store interface {
	// UpsertEndpoints inserts or replaces endpoint records by ID, in one
	// transaction. When a batch holds the same ID twice, the last one wins.
	UpsertEndpoints(ctx context.Context, eps []Record) error
	// Endpoints returns every stored endpoint record, ordered by ID.
	Endpoints(ctx context.Context) ([]Record, error)
	// UpsertFindings inserts findings or updates them by ID, in one
	// transaction. On update, Count is the larger of the stored and the
	// new count (producers report running totals, and a redelivered
	// batch must not inflate them; a zero Count counts as one), FirstSeen keeps the earliest,
	// LastSeen the latest, and every other field — severity and evidence
	// included — takes the new value.
	UpsertFindings(ctx context.Context, fs []finding.Finding) error
	// Findings returns the findings matching f, most recently seen first.
	Findings(ctx context.Context, f FindingFilter) ([]finding.Finding, error)
	// MarkEvents records event ids for at-least-once deduplication: it
	// returns, in input order, the ids never marked before and marks them,
	// atomically. Of concurrent callers marking the same id exactly one
	// sees it fresh. An empty id cannot be deduplicated: it is returned as
	// fresh and not recorded.
	MarkEvents(ctx context.Context, ids []string) (fresh []string, err error)
	// Prune deletes endpoints and findings last seen before the given time
	// and event ids marked before it. Event ids must be kept longer than
	// the transport can redeliver, or a late redelivery is applied twice.
	Prune(ctx context.Context, before time.Time) error
	// Close releases the database; the Store is unusable afterwards.
	Close() error
}

// Record is one endpoint of the inventory, stored as an opaque JSON
// document keyed by a stable id: the inventory package owns its shape.
type Record struct {
	// ID is the stable key of the endpoint.
	ID string
	// API is the API the endpoint belongs to ("" when unknown).
	API string
	// Key is "METHOD /template".
	Key string
	// LastSeen drives retention (Prune); zero means now.
	LastSeen time.Time
	// Doc is the JSON document; nil is stored as JSON null. PostgreSQL
	// stores it as jsonb: it comes back equivalent, not byte-identical
	// (key order and whitespace are normalised).
	Doc []byte
}

// FindingFilter selects findings. The zero value selects all of them.
type FindingFilter struct {
	// Kind keeps findings of this kind only ("" = any).
	Kind string
	// MinSeverity keeps findings at least this severe (0 = any).
	MinSeverity finding.Severity
	// Since keeps findings last seen at or after this time (zero = any).
	Since time.Time
	// Limit caps the number of findings returned (0 = no limit).
	Limit int
}

// Errors returned by Open.
var (
	// ErrUnsupportedURL is returned for a URL whose scheme is neither
	// sqlite:// nor postgres:// (postgresql://).
	ErrUnsupportedURL = errors.New("store: unsupported database URL")
	// ErrSchemaTooNew is returned when the database was migrated by a
	// newer build than this one: running older code against it could
	// corrupt data, so Open refuses.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this build")
)

// URL schemes Open understands.
const (
	schemeSQLite     = "sqlite://"
	schemePostgres   = "postgres://"
	schemePostgreSQL = "postgresql://"
)

// Open connects to the database named by url and brings its schema up to
// date. url is "sqlite://path/to/file.db" (relative or absolute, e.g.
// "sqlite:///var/lib/bulwark/bulwark.db"; "sqlite://:memory:" for a private
// in-memory database) or "postgres://user@host/db?sslmode=disable"
// ("postgresql://" too). A PostgreSQL URL may carry search_path=<schema>
// to keep the tables in a schema of their own, and pool_max_conns=<n> to
// size the connection pool.
func Open(ctx context.Context, url string) (Store, error) {
	lower := strings.ToLower(url)
	switch {
	case strings.HasPrefix(lower, schemeSQLite):
		return openSQLite(ctx, url[len(schemeSQLite):])
	case strings.HasPrefix(lower, schemePostgres), strings.HasPrefix(lower, schemePostgreSQL):
		return openPostgres(ctx, url)
	default:
		scheme, _, ok := strings.Cut(url, "://")
		if !ok {
			scheme = "(none)"
		}
		return nil, fmt.Errorf("%w: scheme %q (want sqlite:// or postgres://)", ErrUnsupportedURL, scheme)
	}
}

// endpointRow is a validated Record ready to write.
type endpointRow struct {
	id, api, key string
	lastSeen     time.Time
	doc          string
}

// prepareEndpoints validates recs, keeps the last record of each ID and
// sorts by ID, so that concurrent writers lock rows in the same order.
func prepareEndpoints(recs []Record, now time.Time) ([]endpointRow, error) {
	byID := make(map[string]int, len(recs))
	rows := make([]endpointRow, 0, len(recs))
	for i, r := range recs {
		if r.ID == "" {
			return nil, fmt.Errorf("store: endpoint %d (%q): empty id", i, r.Key)
		}
		doc := r.Doc
		if len(doc) == 0 {
			doc = []byte("null")
		}
		if !json.Valid(doc) {
			return nil, fmt.Errorf("store: endpoint %q: document is not valid JSON", r.ID)
		}
		last := r.LastSeen
		if last.IsZero() {
			last = now
		}
		row := endpointRow{id: r.ID, api: r.API, key: r.Key, lastSeen: last.UTC().Truncate(time.Microsecond), doc: string(doc)}
		if j, ok := byID[r.ID]; ok {
			rows[j] = row
			continue
		}
		byID[r.ID] = len(rows)
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].id < rows[j].id })
	return rows, nil
}

// findingRow is a validated finding ready to write: the columns the
// store filters and merges on, plus the whole finding as JSON.
type findingRow struct {
	id, kind, api, endpoint string
	severity                int
	firstSeen, lastSeen     time.Time
	count                   int
	doc                     string
}

// prepareFindings validates fs, merges findings of the same ID the way
// an upsert would and sorts by ID (lock order, see prepareEndpoints).
func prepareFindings(fs []finding.Finding, now time.Time) ([]findingRow, error) {
	byID := make(map[string]int, len(fs))
	rows := make([]findingRow, 0, len(fs))
	for i, f := range fs {
		if f.ID == "" || f.Kind == "" {
			return nil, fmt.Errorf("store: finding %d (%q): id and kind are required", i, f.ID)
		}
		if f.Severity < finding.Info || f.Severity > finding.Critical {
			return nil, fmt.Errorf("store: finding %q: invalid severity %d", f.ID, f.Severity)
		}
		if f.LastSeen.IsZero() {
			f.LastSeen = now
		}
		if f.FirstSeen.IsZero() || f.FirstSeen.After(f.LastSeen) {
			f.FirstSeen = f.LastSeen
		}
		if f.Count <= 0 {
			f.Count = 1
		}
		f.FirstSeen = f.FirstSeen.UTC().Truncate(time.Microsecond)
		f.LastSeen = f.LastSeen.UTC().Truncate(time.Microsecond)
		doc, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("store: finding %q: %w", f.ID, err)
		}
		row := findingRow{
			id: f.ID, kind: f.Kind, api: f.API, endpoint: f.Endpoint, severity: int(f.Severity),
			firstSeen: f.FirstSeen, lastSeen: f.LastSeen, count: f.Count, doc: string(doc),
		}
		if j, ok := byID[f.ID]; ok {
			prev := rows[j]
			row.count = max(row.count, prev.count)
			if prev.firstSeen.Before(row.firstSeen) {
				row.firstSeen = prev.firstSeen
			}
			if prev.lastSeen.After(row.lastSeen) {
				row.lastSeen = prev.lastSeen
			}
			rows[j] = row
			continue
		}
		byID[f.ID] = len(rows)
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].id < rows[j].id })
	return rows, nil
}

// decodeFinding rebuilds a finding from its stored document; the columns
// the store merges (severity, times, count) override the document.
func decodeFinding(id, kind string, severity int, first, last time.Time, count int, doc []byte) (finding.Finding, error) {
	var f finding.Finding
	if err := json.Unmarshal(doc, &f); err != nil {
		return finding.Finding{}, fmt.Errorf("store: decode finding %q: %w", id, err)
	}
	f.ID, f.Kind, f.Severity = id, kind, finding.Severity(severity)
	f.FirstSeen, f.LastSeen, f.Count = first.UTC(), last.UTC(), count
	return f, nil
}

// uniqueIDs returns ids without duplicates, in first-seen order, and the
// subset to record: the non-empty ones, sorted so that concurrent writers
// lock rows in the same order.
func uniqueIDs(ids []string) (ordered, toRecord []string) {
	seen := make(map[string]struct{}, len(ids))
	ordered = make([]string, 0, len(ids))
	toRecord = make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		ordered = append(ordered, id)
		if id != "" {
			toRecord = append(toRecord, id)
		}
	}
	sort.Strings(toRecord)
	return ordered, toRecord
}

// freshInOrder returns the ids of ordered that are in fresh or empty
// (never recorded, so always fresh), keeping their order.
func freshInOrder(ordered []string, fresh map[string]struct{}) []string {
	out := make([]string, 0, len(fresh)+1)
	for _, id := range ordered {
		if _, ok := fresh[id]; ok || id == "" {
			out = append(out, id)
		}
	}
	return out
}
