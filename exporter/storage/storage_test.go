package storage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/usage-exporter/usage-exporter/internal/pgtest"
)

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return at }

// Real directories: regular files are summed, symbolic links are not
// followed, the walk stops at max_files and says so, a missing path fails
// and keeps the last good size.
func TestVolumes(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(filepath.Join(logs, "2026", "02"), 0o755)
	os.WriteFile(filepath.Join(logs, "access.log"), make([]byte, 1500), 0o644)
	os.WriteFile(filepath.Join(logs, "2026", "02", "access.log.1"), make([]byte, 2500), 0o644)
	os.WriteFile(filepath.Join(dir, "outside.bin"), make([]byte, 1<<20), 0o644)
	os.Symlink(filepath.Join(dir, "outside.bin"), filepath.Join(logs, "link.bin"))
	many := filepath.Join(dir, "many")
	os.MkdirAll(many, 0o755)
	for i := range 10 {
		os.WriteFile(filepath.Join(many, string(rune('a'+i))), make([]byte, 100), 0o644)
	}

	c := DefaultConfig()
	c.MaxFiles = 6
	c.Volumes = []Volume{{"logs", logs}, {"many", many}, {"gone", filepath.Join(dir, "nope")}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := New(c, 0.023, clock, nil)
	m.Measure(context.Background())
	r := m.Results()
	if r["logs"].Bytes != 4000 || r["logs"].Files != 2 || !r["logs"].OK || r["logs"].Truncated {
		t.Errorf("logs: %+v", r["logs"])
	}
	if r["many"].Files != 6 || r["many"].Bytes != 600 || !r["many"].Truncated {
		t.Errorf("many (max_files 6): %+v", r["many"])
	}
	if r["gone"].OK {
		t.Errorf("a missing path measured: %+v", r["gone"])
	}

	want := `
# HELP usage_storage_bytes Bytes stored in the volume (a directory tree, or a PostgreSQL database), as last measured.
# TYPE usage_storage_bytes gauge
usage_storage_bytes{volume="logs"} 4000
usage_storage_bytes{volume="many"} 600
# HELP usage_storage_monthly_cost_dollars What the volume's bytes cost a month at pricing.storage_per_gb_month.
# TYPE usage_storage_monthly_cost_dollars gauge
usage_storage_monthly_cost_dollars{volume="logs"} 9.2e-08
usage_storage_monthly_cost_dollars{volume="many"} 1.38e-08
# HELP usage_storage_measure_success 1 if the volume's last measurement succeeded.
# TYPE usage_storage_measure_success gauge
usage_storage_measure_success{volume="gone"} 0
usage_storage_measure_success{volume="logs"} 1
usage_storage_measure_success{volume="many"} 1
# HELP usage_storage_walk_truncated 1 if the last walk of the volume stopped at storage.max_files: bytes are a lower bound.
# TYPE usage_storage_walk_truncated gauge
usage_storage_walk_truncated{volume="gone"} 0
usage_storage_walk_truncated{volume="logs"} 0
usage_storage_walk_truncated{volume="many"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "usage_storage_bytes", "usage_storage_monthly_cost_dollars",
		"usage_storage_measure_success", "usage_storage_walk_truncated"); err != nil {
		t.Error(err)
	}

	// The directory goes: the size stays beside a failed measurement.
	os.RemoveAll(logs)
	m.Measure(context.Background())
	if r := m.Results()["logs"]; r.OK || r.Bytes != 4000 {
		t.Errorf("logs removed: %+v", r)
	}
}

// A real PostgreSQL: pg_database_size of each named database, and a
// failure (a database that does not exist, a server that is down) is a
// measure_success of 0, never a stop.
func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE gateway"); err != nil {
		t.Fatal(err)
	}
	var want int64
	if err := conn.QueryRow(ctx, "SELECT pg_database_size('gateway')").Scan(&want); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	c := DefaultConfig()
	c.Postgres.DSN, c.Postgres.Databases = srv.DSN("postgres"), []string{"gateway", "missing"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := New(c, 0.023, clock, nil)
	m.Measure(ctx)
	r := m.Results()
	if g := r["postgres/gateway"]; !g.OK || g.Bytes != float64(want) || want < 1e6 {
		t.Errorf("gateway: %+v, want %d bytes", g, want)
	}
	if r["postgres/missing"].OK {
		t.Errorf("a missing database measured: %+v", r["postgres/missing"])
	}

	c.Postgres.DSN = "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"
	down := New(c, 0.023, clock, nil)
	down.Measure(ctx)
	if r := down.Results()["postgres/gateway"]; r.OK {
		t.Errorf("server down: %+v", r)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		edit  func(*Config)
		field string
	}{
		{func(c *Config) { c.Interval = time.Second }, "interval"},
		{func(c *Config) { c.Volumes = []Volume{{"logs", "relative/path"}} }, "volumes[0].path"},
		{func(c *Config) { c.Volumes = []Volume{{"a b", "/x"}} }, "volumes[0].name"},
		{func(c *Config) { c.Volumes = []Volume{{"a", "/x"}, {"a", "/y"}} }, "volumes[1].name"},
		{func(c *Config) { c.Postgres.DSN = "postgres://h/db"; c.Postgres.Databases = nil }, "postgres.databases"},
		{func(c *Config) { c.Postgres.DSN = "::not a dsn::" }, "postgres.dsn"},
	} {
		c := DefaultConfig()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("want an error about %s, got %v", tc.field, err)
		}
	}
}
