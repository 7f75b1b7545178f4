package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// postgresURLEnv names the PostgreSQL the tests run against.
const postgresURLEnv = "BULWARK_TEST_POSTGRES_URL"

// backend is what the behaviour suite needs of a database kind: fresh
// empty databases and raw access to them, to inspect and tamper with the
// schema behind the Store's back.
type backend struct {
	name string
	// newURL returns the URL of a fresh, empty database removed at the
	// end of the test.
	newURL func(t testing.TB) string
	// exec runs q against the database at u.
	exec func(t testing.TB, u, q string)
	// queryInt returns the single integer q selects.
	queryInt func(t testing.TB, u, q string) int
	// migrate applies ms through s's own connection, as Open does.
	migrate func(t testing.TB, s Store, ms []migration) error
	// migrations is the backend's real migration list.
	migrations []migration
}

// sqliteBackend runs the suite on SQLite files in temporary directories.
func sqliteBackend() backend {
	path := func(u string) string { return strings.TrimPrefix(u, schemeSQLite) }
	withDB := func(t testing.TB, u string, fn func(*sql.DB)) {
		t.Helper()
		db, err := sql.Open(sqliteDriver, path(u)+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatalf("open %s: %v", u, err)
		}
		defer db.Close()
		fn(db)
	}
	return backend{
		name: "sqlite",
		newURL: func(t testing.TB) string {
			return schemeSQLite + filepath.Join(t.TempDir(), "bulwark.db")
		},
		exec: func(t testing.TB, u, q string) {
			t.Helper()
			withDB(t, u, func(db *sql.DB) {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("exec %q: %v", q, err)
				}
			})
		},
		queryInt: func(t testing.TB, u, q string) (n int) {
			t.Helper()
			withDB(t, u, func(db *sql.DB) {
				if err := db.QueryRow(q).Scan(&n); err != nil {
					t.Fatalf("query %q: %v", q, err)
				}
			})
			return n
		},
		migrate: func(t testing.TB, s Store, ms []migration) error {
			return migrateSQLite(context.Background(), s.(*sqliteStore).w, ms)
		},
		migrations: sqliteMigrations,
	}
}

// postgresBackend runs the suite on PostgreSQL, each test in a schema of
// its own; it skips the test when no PostgreSQL is configured.
func postgresBackend(t testing.TB) backend {
	base := os.Getenv(postgresURLEnv)
	if base == "" {
		t.Skip(postgresURLEnv + " not set: skipping PostgreSQL store tests")
	}
	withConn := func(t testing.TB, u string, fn func(*pgx.Conn)) {
		t.Helper()
		ctx := context.Background()
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer c.Close(ctx)
		fn(c)
	}
	return backend{
		name: "postgres",
		newURL: func(t testing.TB) string {
			t.Helper()
			b := make([]byte, 8)
			if _, err := rand.Read(b); err != nil {
				t.Fatal(err)
			}
			schema := "bulwark_test_" + hex.EncodeToString(b)
			withConn(t, base, func(c *pgx.Conn) {
				if _, err := c.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
					t.Fatalf("create schema: %v", err)
				}
			})
			t.Cleanup(func() {
				withConn(t, base, func(c *pgx.Conn) {
					if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
						t.Errorf("drop schema: %v", err)
					}
				})
			})
			u, err := url.Parse(base)
			if err != nil {
				t.Fatalf("parse %s: %v", postgresURLEnv, err)
			}
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		},
		exec: func(t testing.TB, u, q string) {
			t.Helper()
			withConn(t, u, func(c *pgx.Conn) {
				if _, err := c.Exec(context.Background(), q); err != nil {
					t.Fatalf("exec %q: %v", q, err)
				}
			})
		},
		queryInt: func(t testing.TB, u, q string) (n int) {
			t.Helper()
			withConn(t, u, func(c *pgx.Conn) {
				if err := c.QueryRow(context.Background(), q).Scan(&n); err != nil {
					t.Fatalf("query %q: %v", q, err)
				}
			})
			return n
		},
		migrate: func(t testing.TB, s Store, ms []migration) error {
			ctx := context.Background()
			return s.(*pgStore).pool.run(ctx, func(c *pgx.Conn) error { return migratePostgres(ctx, c, ms) })
		},
		migrations: postgresMigrations,
	}
}

func TestSQLite(t *testing.T) { runSuite(t, sqliteBackend()) }

func TestPostgres(t *testing.T) { runSuite(t, postgresBackend(t)) }
