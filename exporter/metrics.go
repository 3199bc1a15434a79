package exporter

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/usage-exporter/usage-exporter/exporter/fielderr"
	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
)

const namespace = "usage"

// Result label values of usage_exporter_log_lines_total.
const (
	resultParsed   = "parsed"
	resultInvalid  = "invalid"
	resultFiltered = "filtered"
)

// Overflow reasons of usage_exporter_series_overflow_total.
const (
	overflowUser  = "user_cap"
	overflowRoute = "route_cap"
)

// MetricsConfig tunes the series the exporter builds.
type MetricsConfig struct {
	// DurationBuckets are the classic buckets of usage_request_duration_seconds.
	DurationBuckets []float64 `yaml:"duration_buckets"`
	// NativeHistograms adds native (sparse) buckets beside the classic ones.
	NativeHistograms bool `yaml:"native_histograms"`
	// NativeBucketFactor is the growth factor between native buckets.
	NativeBucketFactor float64 `yaml:"native_bucket_factor"`
	// NativeMaxBuckets caps native buckets per series.
	NativeMaxBuckets uint32 `yaml:"native_max_buckets"`
}

// DefaultMetricsConfig covers request times from 5 ms to the 60 s of a
// gateway timeout, plus native buckets at 10% resolution.
func DefaultMetricsConfig() MetricsConfig {
	return MetricsConfig{
		DurationBuckets:    []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		NativeHistograms:   true,
		NativeBucketFactor: 1.1,
		NativeMaxBuckets:   160,
	}
}

// Validate checks the buckets.
func (c MetricsConfig) Validate() error {
	if len(c.DurationBuckets) == 0 {
		return fielderr.New("duration_buckets", "needs at least one bucket")
	}
	for i, b := range c.DurationBuckets {
		if !(b > 0) || (i > 0 && b <= c.DurationBuckets[i-1]) {
			return fielderr.New("duration_buckets", "must be positive and increasing")
		}
	}
	if c.NativeHistograms && !(c.NativeBucketFactor > 1) {
		return fielderr.New("native_bucket_factor", "must be greater than 1")
	}
	return nil
}

// Metrics holds every series the exporter's ingest path writes. It outlives
// pipelines: a config reload keeps the counters.
type Metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	responseBytes   *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	userRequests    *prometheus.CounterVec
	logLines        *prometheus.CounterVec
	logLineErrors   *prometheus.CounterVec
	logLastTime     *prometheus.GaugeVec
	seriesOverflow  *prometheus.CounterVec
	dedupEvictions  prometheus.Counter
	checkpointOK    prometheus.Gauge
	checkpointFails prometheus.Counter
	reloadOK        prometheus.Gauge
	reloadTime      prometheus.Gauge

	tailers tailerCollector
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer, cfg MetricsConfig) *Metrics {
	f := promauto.With(reg)
	durationOpts := prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "request_duration_seconds",
		Help:      "Request time from the access logs, by api_service and route.",
		Buckets:   cfg.DurationBuckets,
	}
	if cfg.NativeHistograms {
		durationOpts.NativeHistogramBucketFactor = cfg.NativeBucketFactor
		durationOpts.NativeHistogramMaxBucketNumber = cfg.NativeMaxBuckets
		durationOpts.NativeHistogramMinResetDuration = 0
	}
	m := &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Requests in the access logs, by api_service, route, method and status code.",
		}, []string{"api_service", "route", "method", "code"}),
		duration: f.NewHistogramVec(durationOpts, []string{"api_service", "route"}),
		responseBytes: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "response_size_bytes_total",
			Help: "Response body bytes in the access logs, by api_service.",
		}, []string{"api_service"}),
		duplicates: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "duplicate_requests_total",
			Help: "Requests whose cache key was already seen within the duplicate window, by api_service.",
		}, []string{"api_service"}),
		userRequests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "user_requests_total",
			Help: "Requests by user, plan tier and api_service.",
		}, []string{"user", "tier", "api_service"}),
		logLines: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "log_lines_total",
			Help: "Log lines read, by source and result (parsed, invalid, filtered).",
		}, []string{"source", "result"}),
		logLineErrors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "log_line_errors_total",
			Help: "Invalid log lines by source and reason.",
		}, []string{"source", "reason"}),
		logLastTime: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "log_last_timestamp_seconds",
			Help: "Timestamp of the newest parsed log line, by source.",
		}, []string{"source"}),
		seriesOverflow: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "series_overflow_total",
			Help: "Requests whose label value was folded into __other__ by a cardinality cap, by reason.",
		}, []string{"reason"}),
		dedupEvictions: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "duplicate_window_evictions_total",
			Help: "Cache keys forgotten before their window ended because duplicates.max_keys was reached.",
		}),
		checkpointOK: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "checkpoint_last_success_timestamp_seconds",
			Help: "When the state file (read positions) was last written.",
		}),
		checkpointFails: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "checkpoint_errors_total",
			Help: "Failed writes of the state file.",
		}),
		reloadOK: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded.",
		}),
		reloadTime: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully.",
		}),
	}
	for _, r := range []string{overflowUser, overflowRoute} {
		m.seriesOverflow.WithLabelValues(r)
	}
	reg.MustRegister(&m.tailers)
	return m
}

// initSource creates a source's series at zero, so that rate() and alerts
// see them before the first bad line.
func (m *Metrics) initSource(source string) {
	for _, r := range []string{resultParsed, resultInvalid, resultFiltered} {
		m.logLines.WithLabelValues(source, r)
	}
	for _, r := range logparse.Reasons {
		m.logLineErrors.WithLabelValues(source, string(r))
	}
}

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
