package exporter

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
)

// tailerCollector reports file-following state of the current pipeline,
// plus the counts of pipelines stopped by reloads, so counters never drop.
type tailerCollector struct {
	mu      sync.Mutex
	current *tailer.Tailer
	base    map[string]tailer.SourceStats
}

var (
	filesDesc  = prometheus.NewDesc("usage_exporter_log_files", "Files being read, by source.", []string{"source"}, nil)
	unreadDesc = prometheus.NewDesc("usage_exporter_log_unread_bytes",
		"Bytes in the files being read beyond the read position, by source: how far the exporter is behind.", []string{"source"}, nil)
	rotationsDesc = prometheus.NewDesc("usage_exporter_log_rotations_total",
		"Rotations seen, by source and kind (rename, truncate).", []string{"source", "kind"}, nil)
	recoveredDesc = prometheus.NewDesc("usage_exporter_log_truncations_recovered_total",
		"Truncations whose cut-off lines were read back from the rotated copy, by source.", []string{"source"}, nil)
)

func (c *tailerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- filesDesc
	ch <- unreadDesc
	ch <- rotationsDesc
	ch <- recoveredDesc
}

func (c *tailerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	t := c.current
	stats := map[string]tailer.SourceStats{}
	for k, v := range c.base {
		stats[k] = v
	}
	c.mu.Unlock()
	if t != nil {
		for _, s := range t.Stats() {
			b := stats[s.Source]
			addCounts(&b, s)
			b.Files, b.UnreadBytes = s.Files, s.UnreadBytes
			stats[s.Source] = b
		}
	}
	for src, s := range stats {
		ch <- prometheus.MustNewConstMetric(filesDesc, prometheus.GaugeValue, float64(s.Files), src)
		ch <- prometheus.MustNewConstMetric(unreadDesc, prometheus.GaugeValue, float64(s.UnreadBytes), src)
		ch <- prometheus.MustNewConstMetric(rotationsDesc, prometheus.CounterValue, float64(s.Renames), src, "rename")
		ch <- prometheus.MustNewConstMetric(rotationsDesc, prometheus.CounterValue, float64(s.Truncations), src, "truncate")
		ch <- prometheus.MustNewConstMetric(recoveredDesc, prometheus.CounterValue, float64(s.Recovered), src)
	}
}

// attach makes t the reported tailer.
func (c *tailerCollector) attach(t *tailer.Tailer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = t
}

// detach folds the counts of a stopped tailer into the base.
func (c *tailerCollector) detach(t *tailer.Tailer) {
	final := t.Stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base == nil {
		c.base = map[string]tailer.SourceStats{}
	}
	for _, s := range final {
		b := c.base[s.Source]
		addCounts(&b, s)
		c.base[s.Source] = b
	}
	if c.current == t {
		c.current = nil
	}
}

// addCounts adds the counters of s (not its gauges) to dst.
func addCounts(dst *tailer.SourceStats, s tailer.SourceStats) {
	dst.Source = s.Source
	dst.Renames += s.Renames
	dst.Truncations += s.Truncations
	dst.Recovered += s.Recovered
}

// litellmCollector re-exports what LiteLLM alone knows, from the last
// successful scrape of each process: latency per model and its response
// cache, summed over the processes (each a monotonic counter), and the
// budgets of the newest scrape. A process not scraped for stale drops out;
// a restart shows as a counter reset.
type litellmCollector struct {
	mu    sync.Mutex
	procs map[litellmProc]litellmSeen
	stale time.Duration
	now   func() time.Time
}

type litellmProc struct {
	endpoint string
	start    float64
}

type litellmSeen struct {
	snap *litellm.Snapshot
	at   time.Time
}

func newLiteLLMCollector(now func() time.Time) *litellmCollector {
	return &litellmCollector{procs: map[litellmProc]litellmSeen{}, stale: 5 * time.Minute, now: now}
}

// setStale keeps a process's latency for ten intervals, at least 5 minutes:
// replicas behind one URL answer in turn.
func (c *litellmCollector) setStale(interval time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stale = max(5*time.Minute, 10*interval)
}

func (c *litellmCollector) set(endpoint string, s *litellm.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.procs[litellmProc{endpoint, s.StartTime}] = litellmSeen{s, now}
	for p, seen := range c.procs {
		if now.Sub(seen.at) > c.stale {
			delete(c.procs, p)
		}
	}
}

// fail withdraws an endpoint's processes.
func (c *litellmCollector) fail(endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.procs {
		if p.endpoint == endpoint {
			delete(c.procs, p)
		}
	}
}

// merged sums the processes' latency and cache counts; the budgets are the
// newest scrape's.
func (c *litellmCollector) merged() *litellm.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.procs) == 0 {
		return nil
	}
	out := &litellm.Snapshot{Latency: map[string]*litellm.Histogram{}, CacheHits: map[string]float64{},
		CacheMiss: map[string]float64{}}
	var newest time.Time
	for _, seen := range c.procs {
		s := seen.snap
		for model, h := range s.Latency {
			agg := out.Latency[model]
			if agg == nil {
				agg = &litellm.Histogram{Buckets: map[float64]float64{}}
				out.Latency[model] = agg
			}
			for le, n := range h.Buckets {
				agg.Buckets[le] += n
			}
			agg.Count += h.Count
			agg.Sum += h.Sum
		}
		for model, v := range s.CacheHits {
			out.CacheHits[model] += v
		}
		for model, v := range s.CacheMiss {
			out.CacheMiss[model] += v
		}
		if !seen.at.Before(newest) {
			newest, out.Budgets = seen.at, s.Budgets
		}
	}
	return out
}

var (
	llmLatencyDesc = prometheus.NewDesc("usage_llm_request_duration_seconds",
		"Request time of model calls through LiteLLM, by model (litellm_request_total_latency_metric).", []string{"model"}, nil)
	llmCacheDesc = prometheus.NewDesc("usage_llm_cache_requests_total",
		"LiteLLM response-cache lookups by model and result (hit, miss).", []string{"model", "result"}, nil)
	budgetRemainingDesc = prometheus.NewDesc("usage_llm_budget_remaining_dollars",
		"LiteLLM budget left, by scope (team, org, api_key, user) and name; absent when unlimited.", []string{"scope", "name"}, nil)
	budgetMaxDesc = prometheus.NewDesc("usage_llm_budget_max_dollars",
		"LiteLLM budget per period, by scope and name.", []string{"scope", "name"}, nil)
	budgetResetDesc = prometheus.NewDesc("usage_llm_budget_reset_hours",
		"Hours until a LiteLLM budget resets, by scope and name.", []string{"scope", "name"}, nil)
)

func (c *litellmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{llmLatencyDesc, llmCacheDesc, budgetRemainingDesc, budgetMaxDesc, budgetResetDesc} {
		ch <- d
	}
}

func (c *litellmCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.merged()
	if s == nil {
		return
	}
	for model, h := range s.Latency {
		buckets := make(map[float64]uint64, len(h.Buckets))
		for le, n := range h.Buckets {
			if !math.IsInf(le, 1) {
				buckets[le] = uint64(n)
			}
		}
		ch <- prometheus.MustNewConstHistogram(llmLatencyDesc, uint64(h.Count), h.Sum, buckets, model)
	}
	for model, v := range s.CacheHits {
		ch <- prometheus.MustNewConstMetric(llmCacheDesc, prometheus.CounterValue, v, model, "hit")
	}
	for model, v := range s.CacheMiss {
		ch <- prometheus.MustNewConstMetric(llmCacheDesc, prometheus.CounterValue, v, model, "miss")
	}
	for _, b := range s.Budgets {
		for _, g := range []struct {
			desc *prometheus.Desc
			v    float64
		}{{budgetRemainingDesc, b.Remaining}, {budgetMaxDesc, b.Max}, {budgetResetDesc, b.HoursToReset}} {
			if !math.IsNaN(g.v) {
				ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, g.v, b.Scope, b.Name)
			}
		}
	}
}
