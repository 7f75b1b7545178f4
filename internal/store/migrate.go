package store

import "fmt"

// migration is one step of a schema: a version (1, 2, 3… with no gap)
// and the statements that take the previous version to it. Statements are
// separate strings because neither driver is guaranteed to run several
// statements in one call. A released migration is never edited: a change
// is a new migration appended to the list.
type migration struct {
	version    int
	statements []string
}

// sqliteMigrations is the SQLite schema. Times are INTEGER unix
// microseconds: compared and pruned as numbers, with the precision
// PostgreSQL's timestamptz has, so both backends return the same values.
var sqliteMigrations = []migration{
	{version: 1, statements: []string{
		`CREATE TABLE endpoints (
			id           TEXT PRIMARY KEY,
			api          TEXT NOT NULL DEFAULT '',
			endpoint_key TEXT NOT NULL DEFAULT '',
			last_seen    INTEGER NOT NULL,
			doc          TEXT NOT NULL
		)`,
		`CREATE INDEX endpoints_last_seen ON endpoints (last_seen)`,
		`CREATE TABLE findings (
			id         TEXT PRIMARY KEY,
			kind       TEXT NOT NULL,
			severity   INTEGER NOT NULL,
			api        TEXT NOT NULL DEFAULT '',
			endpoint   TEXT NOT NULL DEFAULT '',
			first_seen INTEGER NOT NULL,
			last_seen  INTEGER NOT NULL,
			count      INTEGER NOT NULL,
			doc        TEXT NOT NULL
		)`,
		`CREATE INDEX findings_last_seen ON findings (last_seen)`,
		`CREATE INDEX findings_kind_last_seen ON findings (kind, last_seen)`,
		`CREATE TABLE seen_events (
			id      TEXT PRIMARY KEY,
			seen_at INTEGER NOT NULL
		) WITHOUT ROWID`,
		`CREATE INDEX seen_events_seen_at ON seen_events (seen_at)`,
	}},
}

// postgresMigrations is the PostgreSQL schema, the same tables as
// sqliteMigrations with native types (timestamptz, jsonb).
var postgresMigrations = []migration{
	{version: 1, statements: []string{
		`CREATE TABLE endpoints (
			id           text PRIMARY KEY,
			api          text NOT NULL DEFAULT '',
			endpoint_key text NOT NULL DEFAULT '',
			last_seen    timestamptz NOT NULL,
			doc          jsonb NOT NULL
		)`,
		`CREATE INDEX endpoints_last_seen ON endpoints (last_seen)`,
		`CREATE TABLE findings (
			id         text PRIMARY KEY,
			kind       text NOT NULL,
			severity   smallint NOT NULL,
			api        text NOT NULL DEFAULT '',
			endpoint   text NOT NULL DEFAULT '',
			first_seen timestamptz NOT NULL,
			last_seen  timestamptz NOT NULL,
			count      bigint NOT NULL,
			doc        jsonb NOT NULL
		)`,
		`CREATE INDEX findings_last_seen ON findings (last_seen)`,
		`CREATE INDEX findings_kind_last_seen ON findings (kind, last_seen)`,
		`CREATE TABLE seen_events (
			id      text PRIMARY KEY,
			seen_at timestamptz NOT NULL
		)`,
		`CREATE INDEX seen_events_seen_at ON seen_events (seen_at)`,
	}},
}

// pendingMigrations returns the migrations of ms above current, or
// ErrSchemaTooNew when the database is ahead of ms.
func pendingMigrations(current int, ms []migration) ([]migration, error) {
	if err := checkMigrations(ms); err != nil {
		return nil, err
	}
	latest := ms[len(ms)-1].version
	if current > latest {
		return nil, fmt.Errorf("%w: database is at version %d, this build knows versions up to %d; upgrade Bulwark",
			ErrSchemaTooNew, current, latest)
	}
	return ms[current:], nil
}

// checkMigrations verifies that ms is numbered 1, 2, 3… without gaps, so
// that ms[v:] is everything after version v.
func checkMigrations(ms []migration) error {
	if len(ms) == 0 {
		return fmt.Errorf("store: no migrations")
	}
	for i, m := range ms {
		if m.version != i+1 {
			return fmt.Errorf("store: migration %d has version %d, want %d", i, m.version, i+1)
		}
	}
	return nil
}
