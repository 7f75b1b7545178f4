package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

const (
	// sqliteDriver is the database/sql name modernc.org/sqlite registers.
	sqliteDriver = "sqlite"
	// sqliteMemory is the path of a private in-memory database.
	sqliteMemory = ":memory:"
	// sqliteBusyTimeoutMS is how long a connection waits for a lock held
	// by another connection or process (a CLI prune while the collector
	// runs) before failing: a writer holds the lock for one batch, well
	// under a second, so 5s rides out contention without hanging forever.
	sqliteBusyTimeoutMS = 5000
	// sqliteReadConns sizes the read pool: WAL lets readers run beside
	// the single writer; a handful serves the admin API and reports.
	sqliteReadConns = 4
	// sqliteDirMode is the mode of a database directory Open creates: the
	// inventory and findings describe the protected APIs, so the owner only.
	sqliteDirMode = 0o700
)

// sqliteStore is the SQLite Store. SQLite allows one writer at a time,
// so writes go through a single connection (w) and each batch is one
// transaction, begun IMMEDIATE so that a writer in another process makes
// it wait (busy_timeout) instead of failing on a lock upgrade. Reads use a
// separate pool (r) that WAL lets run beside the writer; an in-memory
// database has one connection for both, being private to it.
type sqliteStore struct {
	w, r *sql.DB
}

// openSQLite opens (creating if needed) the database file at path and
// migrates it.
func openSQLite(ctx context.Context, path string) (*sqliteStore, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: sqlite:// needs a path (sqlite://bulwark.db, sqlite:///abs/path.db or sqlite://:memory:)", ErrUnsupportedURL)
	}
	memory := path == sqliteMemory
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), sqliteDirMode); err != nil {
			return nil, fmt.Errorf("store: create database directory: %w", err)
		}
	}
	busy := "busy_timeout(" + strconv.Itoa(sqliteBusyTimeoutMS) + ")"
	wq := url.Values{"_pragma": {busy, "journal_mode(WAL)", "synchronous(NORMAL)"}, "_txlock": {"immediate"}}
	w, err := sql.Open(sqliteDriver, path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %q: %w", path, err)
	}
	// One writer connection, never recycled: an in-memory database lives
	// and dies with its connection.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrateSQLite(ctx, w, sqliteMigrations); err != nil {
		return nil, errors.Join(fmt.Errorf("store: migrate sqlite %q: %w", path, err), w.Close())
	}
	s := &sqliteStore{w: w, r: w}
	if memory {
		return s, nil
	}
	rq := url.Values{"_pragma": {busy, "query_only(1)"}}
	r, err := sql.Open(sqliteDriver, path+"?"+rq.Encode())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("store: open sqlite %q: %w", path, err), w.Close())
	}
	r.SetMaxOpenConns(sqliteReadConns)
	r.SetMaxIdleConns(sqliteReadConns)
	if err := r.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open sqlite %q: %w", path, err), r.Close(), w.Close())
	}
	s.r = r
	return s, nil
}

// migrateSQLite applies the migrations of ms the database lacks, all in
// one transaction: a failure leaves the schema as it was.
func migrateSQLite(ctx context.Context, db *sql.DB, ms []migration) error {
	return sqliteTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		pending, err := pendingMigrations(current, ms)
		if err != nil {
			return err
		}
		for _, m := range pending {
			for _, stmt := range m.statements {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d: %w", m.version, err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.version, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("record migration %d: %w", m.version, err)
			}
		}
		return nil
	})
}

// sqliteTx runs fn in a transaction of db, committing when it returns nil.
func sqliteTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// ignoreDone drops the error of rolling back a transaction that is
// already over (the context ended and database/sql rolled it back).
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// micros converts a time to the stored INTEGER.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts a stored INTEGER to a time.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// execEach prepares query once and runs it with each argument list.
func execEach(ctx context.Context, tx *sql.Tx, query string, n int, args func(i int) []any) error {
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	for i := range n {
		if _, err := stmt.ExecContext(ctx, args(i)...); err != nil {
			return err
		}
	}
	return nil
}

// UpsertEndpoints implements Store.
func (s *sqliteStore) UpsertEndpoints(ctx context.Context, eps []Record) error {
	rows, err := prepareEndpoints(eps, time.Now())
	if err != nil || len(rows) == 0 {
		return err
	}
	err = sqliteTx(ctx, s.w, func(tx *sql.Tx) error {
		return execEach(ctx, tx, `INSERT INTO endpoints (id, api, endpoint_key, last_seen, doc) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				api = excluded.api, endpoint_key = excluded.endpoint_key,
				last_seen = excluded.last_seen, doc = excluded.doc`,
			len(rows), func(i int) []any {
				r := rows[i]
				return []any{r.id, r.api, r.key, micros(r.lastSeen), r.doc}
			})
	})
	if err != nil {
		return fmt.Errorf("store: upsert %d endpoints: %w", len(rows), err)
	}
	return nil
}

// Endpoints implements Store.
func (s *sqliteStore) Endpoints(ctx context.Context) ([]Record, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, api, endpoint_key, last_seen, doc FROM endpoints ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list endpoints: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var (
			r    Record
			last int64
			doc  string
		)
		if err := rows.Scan(&r.ID, &r.API, &r.Key, &last, &doc); err != nil {
			return nil, fmt.Errorf("store: list endpoints: %w", err)
		}
		r.LastSeen, r.Doc = fromMicros(last), []byte(doc)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list endpoints: %w", err)
	}
	return out, nil
}

// UpsertFindings implements Store.
func (s *sqliteStore) UpsertFindings(ctx context.Context, fs []finding.Finding) error {
	rows, err := prepareFindings(fs, time.Now())
	if err != nil || len(rows) == 0 {
		return err
	}
	err = sqliteTx(ctx, s.w, func(tx *sql.Tx) error {
		return execEach(ctx, tx, `INSERT INTO findings
				(id, kind, severity, api, endpoint, first_seen, last_seen, count, doc)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				kind = excluded.kind, severity = excluded.severity,
				api = excluded.api, endpoint = excluded.endpoint,
				first_seen = MIN(findings.first_seen, excluded.first_seen),
				last_seen = MAX(findings.last_seen, excluded.last_seen),
				count = max(findings.count, excluded.count),
				doc = excluded.doc`,
			len(rows), func(i int) []any {
				r := rows[i]
				return []any{r.id, r.kind, r.severity, r.api, r.endpoint, micros(r.firstSeen), micros(r.lastSeen), r.count, r.doc}
			})
	})
	if err != nil {
		return fmt.Errorf("store: upsert %d findings: %w", len(rows), err)
	}
	return nil
}

// Findings implements Store.
func (s *sqliteStore) Findings(ctx context.Context, f FindingFilter) ([]finding.Finding, error) {
	var (
		where []string
		args  []any
	)
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if f.MinSeverity > 0 {
		where, args = append(where, "severity >= ?"), append(args, int(f.MinSeverity))
	}
	if !f.Since.IsZero() {
		where, args = append(where, "last_seen >= ?"), append(args, micros(f.Since))
	}
	q := `SELECT id, kind, severity, first_seen, last_seen, count, doc FROM findings`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY last_seen DESC, id"
	if f.Limit > 0 {
		q, args = q+" LIMIT ?", append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list findings: %w", err)
	}
	defer rows.Close()
	var out []finding.Finding
	for rows.Next() {
		var (
			id, kind, doc   string
			severity, count int
			first, lastSeen int64
		)
		if err := rows.Scan(&id, &kind, &severity, &first, &lastSeen, &count, &doc); err != nil {
			return nil, fmt.Errorf("store: list findings: %w", err)
		}
		fd, err := decodeFinding(id, kind, severity, fromMicros(first), fromMicros(lastSeen), count, []byte(doc))
		if err != nil {
			return nil, err
		}
		out = append(out, fd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list findings: %w", err)
	}
	return out, nil
}

// MarkEvents implements Store. The single writer connection serialises
// callers; BEGIN IMMEDIATE serialises other processes.
func (s *sqliteStore) MarkEvents(ctx context.Context, ids []string) ([]string, error) {
	ordered, toRecord := uniqueIDs(ids)
	var fresh map[string]struct{}
	err := sqliteTx(ctx, s.w, func(tx *sql.Tx) error {
		fresh = make(map[string]struct{}, len(toRecord))
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO seen_events (id, seen_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer stmt.Close()
		now := micros(time.Now())
		for _, id := range toRecord {
			res, err := stmt.ExecContext(ctx, id, now)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 1 {
				fresh[id] = struct{}{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: mark %d events: %w", len(toRecord), err)
	}
	return freshInOrder(ordered, fresh), nil
}

// Prune implements Store.
func (s *sqliteStore) Prune(ctx context.Context, before time.Time) error {
	cut := micros(before)
	err := sqliteTx(ctx, s.w, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM endpoints WHERE last_seen < ?`,
			`DELETE FROM findings WHERE last_seen < ?`,
			`DELETE FROM seen_events WHERE seen_at < ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, cut); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: prune before %s: %w", before.Format(time.RFC3339), err)
	}
	return nil
}

// Close implements Store.
func (s *sqliteStore) Close() error {
	var errR error
	if s.r != s.w {
		errR = s.r.Close()
	}
	if err := errors.Join(errR, s.w.Close()); err != nil {
		return fmt.Errorf("store: close sqlite: %w", err)
	}
	return nil
}
