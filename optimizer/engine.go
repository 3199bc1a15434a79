package optimizer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
	"golang.org/x/sync/singleflight"
	"gopkg.in/yaml.v3"
)

// Settings are what an analysis depends on besides the usage: the
// configuration and its price table. Reloads swap them whole.
type Settings struct {
	Config *Config
	Prices *pricing.Table
	// key names the cache entries of these settings and this source, so that
	// sidecars with different settings do not share results.
	key string
}

// NewSettings loads the price table of cfg.
func NewSettings(cfg *Config) (*Settings, error) {
	prices, err := pricing.Load(cfg.Pricing)
	if err != nil {
		return nil, fmt.Errorf("pricing: %w", err)
	}
	return &Settings{Config: cfg, Prices: prices}, nil
}

// Engine computes reports on demand and on an interval, caches them, and
// keeps the last good one of each window for when the source fails.
type Engine struct {
	Source Source
	Cache  Cache
	// TTL is how long a report is fresh; MaxStale how long after that a
	// report may still be served, marked stale, while the source fails.
	TTL, MaxStale time.Duration
	// LockWait bounds the wait for another sidecar's computation.
	LockWait time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
	// Directory, when set, names users (by-user.username): Keycloak.
	Directory Directory

	settings atomic.Pointer[Settings]
	flight   singleflight.Group

	mu       sync.Mutex
	lastGood map[string]*Report
	current  atomic.Pointer[Report] // the last good report of the background window

	health *health
}

// Directory knows users' names by id.
type Directory interface {
	User(id string) (*plans.KeycloakUser, bool)
}

// ErrUnavailable wraps a source failure.
var ErrUnavailable = errors.New("usage source unavailable")

// NewEngine prepares an engine; register its health metrics with Register.
func NewEngine(src Source, cache Cache, s *Settings) *Engine {
	e := &Engine{Source: src, Cache: cache, TTL: 5 * time.Minute, MaxStale: time.Hour, LockWait: 30 * time.Second,
		Logger: slog.New(slog.DiscardHandler), Now: time.Now, lastGood: map[string]*Report{}, health: newHealth()}
	e.SetSettings(s)
	return e
}

// SetSettings swaps the configuration; reports of the old one are not reused.
func (e *Engine) SetSettings(s *Settings) {
	cfg, _ := yaml.Marshal(s.Config)
	h := sha256.New()
	h.Write([]byte(e.Source.Name()))
	h.Write(cfg)
	for _, src := range s.Prices.Sources() {
		h.Write([]byte(src.Name + src.SHA256))
	}
	s.key = hex.EncodeToString(h.Sum(nil)[:8])
	e.settings.Store(s)
	e.mu.Lock()
	clear(e.lastGood) // their keys are not asked for again
	e.mu.Unlock()
}

// Settings returns the settings in use.
func (e *Engine) Settings() *Settings { return e.settings.Load() }

// Current is the last good report of the background window, or nil.
func (e *Engine) Current() *Report { return e.current.Load() }

// Age is how old r is now.
func (e *Engine) Age(r *Report) time.Duration { return e.Now().Sub(r.GeneratedAt) }

func (e *Engine) fresh(r *Report) bool { return r != nil && e.Age(r) < e.TTL }

// Report returns a fresh report of days. When the source fails it returns
// the error with the newest good report it has (which may be nil or stale):
// the caller decides whether stale is good enough.
func (e *Engine) Report(ctx context.Context, days int) (*Report, error) {
	s := e.settings.Load()
	key := fmt.Sprintf("%s:%d", s.key, days)
	if r := e.cached(ctx, key); e.fresh(r) {
		e.health.cache.WithLabelValues("hit").Inc()
		return r, nil
	}
	// One computation per key in this process; it outlives a caller that
	// hangs up, since the other callers and the cache want its result.
	v, err, _ := e.flight.Do(key, func() (any, error) {
		return e.compute(context.WithoutCancel(ctx), s, key, days)
	})
	r, _ := v.(*Report)
	if err != nil {
		e.health.cache.WithLabelValues("failed").Inc()
		return e.cached(ctx, key), err
	}
	return r, nil
}

// cached is the newest report of key this process knows: its own when
// fresh, else the cache's (another sidecar's, with Redis) when newer.
func (e *Engine) cached(ctx context.Context, key string) *Report {
	e.mu.Lock()
	r := e.lastGood[key]
	e.mu.Unlock()
	if e.fresh(r) {
		return r
	}
	c, err := e.Cache.Get(ctx, key)
	e.health.cacheError(err)
	if err != nil {
		e.Logger.Warn("reading the report cache failed", "err", err)
	}
	if c != nil && (r == nil || c.GeneratedAt.After(r.GeneratedAt)) {
		e.remember(key, c)
		r = c
	}
	return r
}

func (e *Engine) compute(ctx context.Context, s *Settings, key string, days int) (*Report, error) {
	locked, err := e.Cache.Lock(ctx, key, e.LockWait)
	e.health.cacheError(err)
	if err != nil {
		locked = true // the cache is down: compute here
	}
	if !locked {
		// Another sidecar computes this window: wait for its result.
		deadline := time.Now().Add(e.LockWait)
		for time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			if r, err := e.Cache.Get(ctx, key); err == nil && e.fresh(r) {
				e.remember(key, r)
				e.health.cache.WithLabelValues("shared").Inc()
				return r, nil
			}
		}
		e.Logger.Warn("no report from the sidecar holding the lock; computing here", "days", days)
	} else if err == nil {
		defer func() { _ = e.Cache.Unlock(ctx, key) }()
	}

	start := time.Now()
	now := e.Now()
	snap, err := e.Source.Snapshot(ctx, days, now)
	e.health.run(start, err)
	if err != nil {
		e.Logger.Error("analysis failed", "source", e.Source.Name(), "days", days, "err", err)
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, e.Source.Name(), err)
	}
	res := Recommend(snap, s.Prices, s.Config.Plans, *s.Config, now)
	snap.StoragePerGBMonth = s.Config.Pricing.StoragePerGBMonth
	if s.Config.Costs.SplitAcrossOrgs {
		snap.SharedInfrastructureHourly = s.Config.Costs.InfrastructureHourly
	}
	r := NewReport(snap, res, s.Config.Plans, now)
	if e.Directory != nil {
		for i := range r.Users {
			if u, ok := e.Directory.User(r.Users[i].UserID); ok && u.Username != "" {
				r.Users[i].Username = u.Username
			}
		}
	}
	e.health.cache.WithLabelValues("computed").Inc()
	if err := e.Cache.Put(ctx, key, r, e.TTL+e.MaxStale); err != nil {
		e.health.cacheError(err)
		e.Logger.Warn("writing the report cache failed", "err", err)
	}
	e.remember(key, r)
	e.Logger.Debug("analysis done", "days", days, "recommendations", len(res.Recommendations),
		"duration", time.Since(start))
	return r, nil
}

// maxWindows bounds the reports kept in memory: a client asking for every
// window from 1 to 90 days must not hold 90 large reports.
const maxWindows = 16

func (e *Engine) remember(key string, r *Report) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastGood[key] = r
	for len(e.lastGood) > maxWindows {
		oldest := ""
		for k, v := range e.lastGood {
			if oldest == "" || v.GeneratedAt.Before(e.lastGood[oldest].GeneratedAt) {
				oldest = k
			}
		}
		delete(e.lastGood, oldest)
	}
}

// Loop recomputes the window of days every interval until ctx ends; the
// result feeds the recommendation series. A failed run keeps the last good.
func (e *Engine) Loop(ctx context.Context, days int, every time.Duration) {
	e.health.window.Set(float64(days))
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, _ := e.Report(ctx, days)
		if r != nil && (e.current.Load() == nil || !r.GeneratedAt.Before(e.current.Load().GeneratedAt)) {
			e.current.Store(r)
		}
		t.Reset(every)
	}
}

// health are the optimizer's own series.
type health struct {
	runs        *prometheus.CounterVec
	lastRun     prometheus.Gauge
	lastSuccess prometheus.Gauge
	duration    prometheus.Gauge
	sourceUp    prometheus.Gauge
	cache       *prometheus.CounterVec
	cacheUp     prometheus.Gauge
	window      prometheus.Gauge
}

func newHealth() *health {
	return &health{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "usage_optimizer_runs_total",
			Help: "Analyses run (the source queried), by result: success or failure."}, []string{"result"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "usage_optimizer_last_run_timestamp_seconds",
			Help: "When the last analysis ran."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "usage_optimizer_last_success_timestamp_seconds",
			Help: "When the last analysis succeeded."}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "usage_optimizer_run_duration_seconds",
			Help: "How long the last analysis took, source queries included."}),
		sourceUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "usage_optimizer_source_up",
			Help: "1 if the last query of the usage source (Prometheus or the exporter) succeeded."}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "usage_optimizer_cache_requests_total",
			Help: "Report requests by outcome: hit (fresh in the cache), computed, shared (computed by another sidecar), failed."},
			[]string{"result"}),
		cacheUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "usage_optimizer_cache_up",
			Help: "1 if the last operation on the report cache (Redis when configured) succeeded."}),
		window: prometheus.NewGauge(prometheus.GaugeOpts{Name: "usage_optimizer_analysis_window_days",
			Help: "The window of the background analysis, which the recommendation series describe."}),
	}
}

func (h *health) run(start time.Time, err error) {
	h.lastRun.Set(float64(start.UnixNano()) / 1e9)
	h.duration.Set(time.Since(start).Seconds())
	if err != nil {
		h.runs.WithLabelValues("failure").Inc()
		h.sourceUp.Set(0)
		return
	}
	h.runs.WithLabelValues("success").Inc()
	h.sourceUp.Set(1)
	h.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
}

func (h *health) cacheError(err error) {
	if err != nil {
		h.cacheUp.Set(0)
	} else {
		h.cacheUp.Set(1)
	}
}
