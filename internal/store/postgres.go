package store

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkapi/bulwark/internal/finding"
)

// pgMaxConnsParam is the URL query parameter that sizes the pool. It is
// Bulwark's, not PostgreSQL's, so it is removed before connecting (pgx
// would send it to the server as a run-time parameter, which fails).
const pgMaxConnsParam = "pool_max_conns"

// pgStore is the PostgreSQL Store. Every write is one statement over
// arrays (unnest), hence one transaction and one round trip per batch;
// rows are written in ID order so that concurrent writers cannot
// deadlock on each other's row locks.
type pgStore struct {
	pool *pgPool
}

// openPostgres connects to the database of rawURL and migrates it. Query
// parameters other than pool_max_conns are pgx's and PostgreSQL's own
// (sslmode, search_path, application_name…).
func openPostgres(ctx context.Context, rawURL string) (*pgStore, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// The error would echo the URL, password included.
		return nil, fmt.Errorf("%w: malformed postgres URL", ErrUnsupportedURL)
	}
	maxConns := defaultPGMaxConns
	q := u.Query()
	if v := q.Get(pgMaxConnsParam); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: %s=%q is not a positive integer", ErrUnsupportedURL, pgMaxConnsParam, v)
		}
		maxConns = n
		q.Del(pgMaxConnsParam)
		u.RawQuery = q.Encode()
	}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("store: parse postgres URL: %w", err)
	}
	pool := newPGPool(cfg, maxConns)
	err = pool.run(ctx, func(c *pgx.Conn) error { return migratePostgres(ctx, c, postgresMigrations) })
	if err != nil {
		pool.close()
		return nil, fmt.Errorf("store: open postgres %s@%s/%s: %w", cfg.User, cfg.Host, cfg.Database, err)
	}
	return &pgStore{pool: pool}, nil
}

// migratePostgres applies the migrations of ms the database lacks, in one
// transaction holding an advisory lock on the schema, so that replicas
// starting together migrate once.
func migratePostgres(ctx context.Context, c *pgx.Conn, ms []migration) error {
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('bulwark.store.migrate:' || current_schema()))`); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		pending, err := pendingMigrations(current, ms)
		if err != nil {
			return err
		}
		for _, m := range pending {
			for _, stmt := range m.statements {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d: %w", m.version, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version); err != nil {
				return fmt.Errorf("record migration %d: %w", m.version, err)
			}
		}
		return nil
	})
}

// UpsertEndpoints implements Store.
func (s *pgStore) UpsertEndpoints(ctx context.Context, eps []Record) error {
	rows, err := prepareEndpoints(eps, time.Now())
	if err != nil || len(rows) == 0 {
		return err
	}
	n := len(rows)
	ids, apis, keys, docs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	lasts := make([]time.Time, n)
	for i, r := range rows {
		ids[i], apis[i], keys[i], lasts[i], docs[i] = r.id, r.api, r.key, r.lastSeen, r.doc
	}
	err = s.pool.run(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO endpoints (id, api, endpoint_key, last_seen, doc)
			SELECT id, api, k, ls, d::jsonb
			FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS u(id, api, k, ls, d)
			ON CONFLICT (id) DO UPDATE SET
				api = EXCLUDED.api, endpoint_key = EXCLUDED.endpoint_key,
				last_seen = EXCLUDED.last_seen, doc = EXCLUDED.doc`,
			ids, apis, keys, lasts, docs)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: upsert %d endpoints: %w", n, err)
	}
	return nil
}

// Endpoints implements Store.
func (s *pgStore) Endpoints(ctx context.Context) ([]Record, error) {
	var out []Record
	err := s.pool.run(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT id, api, endpoint_key, last_seen, doc FROM endpoints ORDER BY id`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) {
			var r Record
			err := row.Scan(&r.ID, &r.API, &r.Key, &r.LastSeen, &r.Doc)
			r.LastSeen = r.LastSeen.UTC()
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list endpoints: %w", err)
	}
	return out, nil
}

// UpsertFindings implements Store.
func (s *pgStore) UpsertFindings(ctx context.Context, fs []finding.Finding) error {
	rows, err := prepareFindings(fs, time.Now())
	if err != nil || len(rows) == 0 {
		return err
	}
	n := len(rows)
	ids, kinds, apis, eps, docs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sevs, counts := make([]int32, n), make([]int64, n)
	firsts, lasts := make([]time.Time, n), make([]time.Time, n)
	for i, r := range rows {
		ids[i], kinds[i], apis[i], eps[i], docs[i] = r.id, r.kind, r.api, r.endpoint, r.doc
		sevs[i], counts[i] = int32(r.severity), int64(r.count)
		firsts[i], lasts[i] = r.firstSeen, r.lastSeen
	}
	err = s.pool.run(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO findings (id, kind, severity, api, endpoint, first_seen, last_seen, count, doc)
			SELECT id, kind, sev, api, ep, fs, ls, cnt, d::jsonb
			FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[],
			            $6::timestamptz[], $7::timestamptz[], $8::int8[], $9::text[])
			     AS u(id, kind, sev, api, ep, fs, ls, cnt, d)
			ON CONFLICT (id) DO UPDATE SET
				kind = EXCLUDED.kind, severity = EXCLUDED.severity,
				api = EXCLUDED.api, endpoint = EXCLUDED.endpoint,
				first_seen = LEAST(findings.first_seen, EXCLUDED.first_seen),
				last_seen = GREATEST(findings.last_seen, EXCLUDED.last_seen),
				count = GREATEST(findings.count, EXCLUDED.count),
				doc = EXCLUDED.doc`,
			ids, kinds, sevs, apis, eps, firsts, lasts, counts, docs)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: upsert %d findings: %w", n, err)
	}
	return nil
}

// Findings implements Store.
func (s *pgStore) Findings(ctx context.Context, f FindingFilter) ([]finding.Finding, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(f.Kind))
	}
	if f.MinSeverity > 0 {
		where = append(where, "severity >= "+arg(int32(f.MinSeverity)))
	}
	if !f.Since.IsZero() {
		where = append(where, "last_seen >= "+arg(f.Since))
	}
	q := `SELECT id, kind, severity, first_seen, last_seen, count, doc FROM findings`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY last_seen DESC, id"
	if f.Limit > 0 {
		q += " LIMIT " + arg(int64(f.Limit))
	}
	var out []finding.Finding
	err := s.pool.run(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (finding.Finding, error) {
			var (
				id, kind    string
				sev         int16
				first, last time.Time
				count       int64
				doc         []byte
			)
			if err := row.Scan(&id, &kind, &sev, &first, &last, &count, &doc); err != nil {
				return finding.Finding{}, err
			}
			return decodeFinding(id, kind, int(sev), first, last, int(count), doc)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list findings: %w", err)
	}
	return out, nil
}

// MarkEvents implements Store. One INSERT … ON CONFLICT DO NOTHING
// RETURNING: a concurrent caller inserting the same id waits for this
// transaction and then skips it, so each id is fresh exactly once.
func (s *pgStore) MarkEvents(ctx context.Context, ids []string) ([]string, error) {
	ordered, toRecord := uniqueIDs(ids)
	fresh := make(map[string]struct{}, len(toRecord))
	if len(toRecord) > 0 {
		err := s.pool.run(ctx, func(c *pgx.Conn) error {
			rows, err := c.Query(ctx, `INSERT INTO seen_events (id, seen_at)
				SELECT id, $2 FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n) ORDER BY n
				ON CONFLICT (id) DO NOTHING
				RETURNING id`, toRecord, time.Now())
			if err != nil {
				return err
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, id := range got {
				fresh[id] = struct{}{}
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("store: mark %d events: %w", len(toRecord), err)
		}
	}
	return freshInOrder(ordered, fresh), nil
}

// Prune implements Store.
func (s *pgStore) Prune(ctx context.Context, before time.Time) error {
	err := s.pool.tx(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{
			`DELETE FROM endpoints WHERE last_seen < $1`,
			`DELETE FROM findings WHERE last_seen < $1`,
			`DELETE FROM seen_events WHERE seen_at < $1`,
		} {
			if _, err := tx.Exec(ctx, q, before); err != nil {
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

// Close implements Store. Connections in use are closed as they are
// released.
func (s *pgStore) Close() error {
	s.pool.close()
	return nil
}
