// Package storage measures what the platform stores, for its storage cost:
// the sizes of configured paths (volumes, log directories), walked at most
// every interval and never per scrape, with a bound on the files of one
// walk; and, with a PostgreSQL DSN, pg_database_size of named databases.
package storage

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// Config is the `storage` block of the exporter's configuration.
type Config struct {
	// Interval between measurements (walks are I/O: minutes, not seconds).
	Interval time.Duration `yaml:"interval"`
	// MaxFiles bounds one walk of one volume; a walk that reaches it
	// reports what it counted and says it was cut short.
	MaxFiles int      `yaml:"max_files"`
	Volumes  []Volume `yaml:"volumes"`
	Postgres Postgres `yaml:"postgres"`
}

// Volume is a directory (or file) whose size is measured.
type Volume struct {
	Name string `yaml:"name"`
	Path string `yaml:"path"`
}

// Postgres measures databases with pg_database_size; each is the volume
// "postgres/NAME".
type Postgres struct {
	DSN       string        `yaml:"dsn"`
	Databases []string      `yaml:"databases"`
	Timeout   time.Duration `yaml:"timeout"`
}

// DefaultConfig measures nothing until volumes or a DSN are configured.
func DefaultConfig() Config {
	return Config{Interval: 5 * time.Minute, MaxFiles: 1_000_000, Postgres: Postgres{Timeout: 10 * time.Second}}
}

// Enabled reports whether anything is to be measured.
func (c *Config) Enabled() bool { return len(c.Volumes) > 0 || c.Postgres.DSN != "" }

// Validate checks the block; paths are relative to it.
func (c *Config) Validate() error {
	if c.Interval < time.Minute {
		return fielderr.New("interval", "must be at least 1m (walks are never per scrape), not %s", c.Interval)
	}
	if c.MaxFiles < 1 {
		return fielderr.New("max_files", "must be at least 1")
	}
	seen := map[string]bool{}
	for i, v := range c.Volumes {
		p := fmt.Sprintf("volumes[%d]", i)
		if !fielderr.ValidName(v.Name) {
			return fielderr.New(p+".name", "must be letters, digits, '-' or '_', not %q", v.Name)
		}
		if seen[v.Name] {
			return fielderr.New(p+".name", "%q is named twice", v.Name)
		}
		seen[v.Name] = true
		if !filepath.IsAbs(v.Path) {
			return fielderr.New(p+".path", "must be an absolute path, not %q", v.Path)
		}
	}
	if c.Postgres.DSN != "" {
		if _, err := pgx.ParseConfig(c.Postgres.DSN); err != nil {
			return fielderr.New("postgres.dsn", "is not a PostgreSQL connection string")
		}
		if len(c.Postgres.Databases) == 0 {
			return fielderr.New("postgres.databases", "must name the databases to measure")
		}
		for i, d := range c.Postgres.Databases {
			if d == "" || seen["postgres/"+d] {
				return fielderr.New(fmt.Sprintf("postgres.databases[%d]", i), "must be a distinct database name")
			}
			seen["postgres/"+d] = true
		}
		if c.Postgres.Timeout <= 0 {
			return fielderr.New("postgres.timeout", "must be positive")
		}
	}
	return nil
}

// Result is one volume's last measurement.
type Result struct {
	Bytes     float64
	Files     int
	Truncated bool // the walk reached max_files
	OK        bool
	At        time.Time
}

// Measurer measures the configured volumes and serves the results as series.
type Measurer struct {
	cfg         Config
	pricePerGB  float64 // dollars per GB-month
	now         func() time.Time
	log         *slog.Logger
	mu          sync.Mutex
	results     map[string]Result
	bytes, cost *prometheus.Desc
	ok, at, cut *prometheus.Desc
}

// New measures c; pricePerGB prices a GB (10^9 bytes) stored for a month.
func New(c Config, pricePerGB float64, now func() time.Time, log *slog.Logger) *Measurer {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("usage_storage_"+name, help, []string{"volume"}, nil)
	}
	return &Measurer{cfg: c, pricePerGB: pricePerGB, now: now, log: log, results: map[string]Result{},
		bytes: d("bytes", "Bytes stored in the volume (a directory tree, or a PostgreSQL database), as last measured."),
		cost:  d("monthly_cost_dollars", "What the volume's bytes cost a month at pricing.storage_per_gb_month."),
		ok:    d("measure_success", "1 if the volume's last measurement succeeded."),
		at:    d("last_measured_timestamp_seconds", "When the volume was last measured."),
		cut:   d("walk_truncated", "1 if the last walk of the volume stopped at storage.max_files: bytes are a lower bound.")}
}

// Measure measures every volume once.
func (m *Measurer) Measure(ctx context.Context) {
	for _, v := range m.cfg.Volumes {
		r := m.walk(v.Path)
		if !r.OK {
			m.log.Warn("measuring a storage volume failed", "volume", v.Name, "path", v.Path)
		}
		m.set(v.Name, r)
	}
	if m.cfg.Postgres.DSN != "" {
		m.postgres(ctx)
	}
}

func (m *Measurer) set(volume string, r Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !r.OK {
		if old, ok := m.results[volume]; ok { // keep the last good size beside the failure
			r.Bytes, r.Files, r.Truncated = old.Bytes, old.Files, old.Truncated
		}
	}
	m.results[volume] = r
}

// walk sums the sizes of the regular files under path, without following
// symbolic links; unreadable subdirectories are skipped.
func (m *Measurer) walk(path string) Result {
	r := Result{At: m.now()}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == path {
				return err
			}
			return nil // an unreadable subdirectory: skipped
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if r.Files >= m.cfg.MaxFiles {
			r.Truncated = true
			return fs.SkipAll
		}
		if info, err := d.Info(); err == nil {
			r.Bytes += float64(info.Size())
			r.Files++
		}
		return nil
	})
	r.OK = err == nil
	return r
}

// postgres reads pg_database_size of each database in one connection.
func (m *Measurer) postgres(ctx context.Context) {
	pg := m.cfg.Postgres
	ctx, cancel := context.WithTimeout(ctx, pg.Timeout)
	defer cancel()
	fail := func(err error) {
		// The DSN may hold a password: the log gets the error, not the DSN.
		m.log.Warn("measuring PostgreSQL databases failed", "err", err)
		for _, d := range pg.Databases {
			m.set("postgres/"+d, Result{At: m.now()})
		}
	}
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		fail(err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, d := range pg.Databases {
		var size int64
		r := Result{At: m.now()}
		if err := conn.QueryRow(ctx, "SELECT pg_database_size($1)", d).Scan(&size); err != nil {
			m.log.Warn("pg_database_size failed", "database", d, "err", err)
		} else {
			r.Bytes, r.OK = float64(size), true
		}
		m.set("postgres/"+d, r)
	}
}

// Run measures at once and then every interval until ctx ends; tick (nil:
// a ticker of the interval) says when.
func (m *Measurer) Run(ctx context.Context, tick <-chan time.Time) {
	admin.Every(ctx, m.cfg.Interval, tick, m.Measure)
}

// Results returns a copy of the last measurements by volume.
func (m *Measurer) Results() map[string]Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Result, len(m.results))
	for k, v := range m.results {
		out[k] = v
	}
	return out
}

// Describe implements prometheus.Collector.
func (m *Measurer) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.bytes, m.cost, m.ok, m.at, m.cut} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the cached results, never a walk.
func (m *Measurer) Collect(ch chan<- prometheus.Metric) {
	for vol, r := range m.Results() {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, vol)
		}
		if r.OK || r.Bytes > 0 {
			g(m.bytes, r.Bytes)
			g(m.cost, pricing.StorageMonthlyCost(r.Bytes, m.pricePerGB))
		}
		g(m.ok, b2f(r.OK))
		g(m.at, float64(r.At.UnixMilli())/1000)
		g(m.cut, b2f(r.Truncated))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
