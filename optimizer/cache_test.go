package optimizer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

// Sidecars sharing Redis share one computation per window.
func TestRedisCacheShared(t *testing.T) {
	srv := redistest.Start(t)
	var clockMu sync.Mutex
	clock := time.Date(2025, 10, 24, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	engine := func() (*Engine, *fixedSource) {
		c, err := NewRedisCache(srv.URL(), "usage_optimizer:", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.now = now
		t.Cleanup(func() { c.Close() })
		src := &fixedSource{snap: week}
		e := NewEngine(src, c, mustSettings(t))
		return e, src
	}
	a, srcA := engine()
	b, srcB := engine()
	ctx := context.Background()

	ra, err := a.Report(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Report(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if srcA.calls.Load() != 1 || srcB.calls.Load() != 0 || rb.Overview.TotalAPICalls != ra.Overview.TotalAPICalls ||
		!rb.GeneratedAt.Equal(ra.GeneratedAt) {
		t.Errorf("sequential: %d and %d queries", srcA.calls.Load(), srcB.calls.Load())
	}
	if got := testutil.ToFloat64(b.health.cache.WithLabelValues("hit")); got != 1 {
		t.Errorf("b's cache hits %v", got)
	}

	// At the same time: one computes, the other waits for its result.
	srcA.delay, srcB.delay = 300*time.Millisecond, 300*time.Millisecond
	var wg sync.WaitGroup
	reports := make([]*Report, 2)
	for i, e := range []*Engine{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i], _ = e.Report(ctx, 30)
		}()
	}
	wg.Wait()
	if total := srcA.calls.Load() + srcB.calls.Load(); total != 2 || reports[0] == nil || reports[1] == nil ||
		!reports[0].GeneratedAt.Equal(reports[1].GeneratedAt) {
		t.Errorf("concurrent: %d queries in all, want 2 (one per window)", total)
	}
	shared := testutil.ToFloat64(a.health.cache.WithLabelValues("shared")) + testutil.ToFloat64(b.health.cache.WithLabelValues("shared"))
	if shared != 1 {
		t.Errorf("%v shared results, want 1", shared)
	}

	// Redis down: each computes for itself, and says the cache is down.
	srv.Stop()
	srcA.delay = 0
	if _, err := a.Report(ctx, 14); err != nil {
		t.Fatalf("without Redis: %v", err)
	}
	if got := testutil.ToFloat64(a.health.cacheUp); got != 0 {
		t.Errorf("cache_up %v with Redis down", got)
	}
	// ... and its own last result still serves when the source fails too.
	srcA.fail(errTest)
	a.TTL = 0
	if r, err := a.Report(ctx, 14); err == nil || r == nil {
		t.Errorf("want the error and the last good report, got %v, %v", r, err)
	}
	// Redis back: shared again once the skip period has passed.
	srv.Restart()
	clockMu.Lock()
	clock = clock.Add(redisRetryAfter)
	clockMu.Unlock()
	srcA.fail(nil)
	a.TTL = time.Minute
	if _, err := a.Report(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(a.health.cacheUp); got != 1 {
		t.Errorf("cache_up %v after Redis returned", got)
	}
	before := srcB.calls.Load()
	if _, err := b.Report(ctx, 60); err != nil || srcB.calls.Load() != before {
		t.Errorf("b recomputed a window a wrote after Redis returned: %v", err)
	}
}

var errTest = context.DeadlineExceeded

// Settings changes (a reload) give new cache keys: no result of the old
// configuration is served.
func TestReloadChangesKey(t *testing.T) {
	src := &fixedSource{snap: week}
	e := newTestEngine(t, src)
	r1, _ := e.Report(context.Background(), 7)
	cfg := DefaultConfig()
	cfg.Caching.HitRate = 0.5
	s, err := NewSettings(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.SetSettings(s)
	r2, _ := e.Report(context.Background(), 7)
	if src.calls.Load() != 2 || r1 == r2 {
		t.Errorf("%d queries after a settings change, want 2", src.calls.Load())
	}
}

// A client sweeping every window does not make the sidecar keep them all.
func TestWindowsBounded(t *testing.T) {
	src := &fixedSource{snap: week}
	cache := NewMemoryCache()
	e := NewEngine(src, cache, mustSettings(t))
	for days := 1; days <= MaxDays; days++ {
		if _, err := e.Report(context.Background(), days); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.lastGood) > maxWindows || len(cache.entries) > maxWindows {
		t.Errorf("%d reports remembered, %d cached; at most %d", len(e.lastGood), len(cache.entries), maxWindows)
	}
	// The newest windows stay.
	before := src.calls.Load()
	if _, err := e.Report(context.Background(), MaxDays); err != nil || src.calls.Load() != before {
		t.Errorf("the newest window was recomputed")
	}
}
