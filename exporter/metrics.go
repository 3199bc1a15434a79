package exporter

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/series"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
	"github.com/usage-exporter/usage-exporter/pricing"
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
	overflowModel = "model_cap"
	overflowOrg   = "org_cap"
)

// Directions of usage_llm_tokens_total: disjoint billing buckets.
var tokenDirections = []string{"input", "output", "cache_read", "cache_write", "reasoning"}

// requestTokenBuckets bound prompt sizes. Token counts are whole, so each
// bucket is "under" a round number: le="499" holds the prompts under 500
// tokens, the optimizer's simple queries, le="1999" those under 2,000 (the
// complex ones are the rest).
var requestTokenBuckets = []float64{99, 249, 499, 999, 1999, 3999, 7999, 15999, 31999, 63999, 127999, 255999}

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
	// NewSeriesHold is how long a new series is shown at zero at least
	// (it is shown at zero until a scrape has seen it there in any case):
	// with several Prometheus servers, set it to their scrape interval.
	NewSeriesHold time.Duration `yaml:"new_series_hold"`
	// UserCostByService splits usage_user_cost_dollars_total by api_service:
	// one more series per user and service. Off, it has user and tier only.
	UserCostByService bool `yaml:"user_cost_by_service"`
	// QuotaRatio adds usage_quota_used_ratio, two series per user, which
	// PromQL computes from usage_quota_used and usage_quota_limit.
	QuotaRatio bool `yaml:"quota_ratio"`
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
	if c.NewSeriesHold < 0 {
		return fielderr.New("new_series_hold", "must not be negative")
	}
	return nil
}

// Metrics holds the exporter's series. Those derived from log lines and
// LiteLLM's deltas live in Lines, a series.Set: checkpointed with the read
// positions, and published only once a checkpoint holds them. The rest are
// client_golang metrics of the process itself. Metrics outlive pipelines:
// a configuration reload keeps the counters.
type Metrics struct {
	Lines *series.Set

	requests         *series.Family
	duration         *series.Family
	responseBytes    *series.Family
	duplicates       *series.Family
	userRequests     *series.Family
	logLines         *series.Family
	logLineErrors    *series.Family
	seriesOverflow   *series.Family
	dedupEvictions   *series.Family
	cost             *series.Family
	egress           *series.Family
	userCost         *series.Family
	userTokens       *series.Family
	llmRequests      *series.Family
	llmTokens        *series.Family
	llmRequestTokens *series.Family
	teamCost         *series.Family
	orgRequests      *series.Family
	orgCost          *series.Family
	keyCost          *series.Family
	unpriced         *series.Family

	logLastTime     *prometheus.GaugeVec
	logFirstTime    *prometheus.GaugeVec
	checkpointOK    prometheus.Gauge
	checkpointFails prometheus.Counter
	checkpointBytes prometheus.Gauge
	reloadOK        prometheus.Gauge
	reloadTime      prometheus.Gauge

	price         *prometheus.GaugeVec
	priceMatch    *prometheus.GaugeVec
	priceTable    *prometheus.GaugeVec
	priceEntries  *prometheus.GaugeVec
	priceLoadTime prometheus.Gauge
	priceLoadOK   prometheus.Gauge

	litellmUp          *prometheus.GaugeVec // by target and endpoint
	litellmDuration    *prometheus.GaugeVec
	litellmLastSuccess *prometheus.GaugeVec
	litellmEndpoints   *prometheus.GaugeVec // by target
	litellmDiscovery   *prometheus.CounterVec
	litellmRestarts    prometheus.Counter
	litellmResets      prometheus.Counter
	litellmProcesses   prometheus.Gauge

	redisUp       prometheus.Gauge
	ledgerCommits prometheus.Counter
	ledgerPending prometheus.Gauge
	ledgerPaused  prometheus.Counter

	rollupPushErrors prometheus.Counter

	// Series that exist only when their part is configured: an up of 0
	// where there is no LiteLLM would page someone.
	reg         prometheus.Registerer
	redisOnce   sync.Once
	litellmOnce sync.Once
}

// NewMetrics creates the series: the process's registered with reg, the
// lines' in m.Lines (for the caller to expose); now stamps new series.
func NewMetrics(reg prometheus.Registerer, cfg MetricsConfig, now func() time.Time) *Metrics {
	f := promauto.With(reg)
	lines := series.NewSet(now)
	lines.SetHold(cfg.NewSeriesHold)
	counter := func(name, help string, labels ...string) *series.Family {
		return lines.NewCounter(namespace+"_"+name, help, labels...)
	}
	duration := series.HistogramOpts{Buckets: cfg.DurationBuckets}
	if cfg.NativeHistograms {
		duration.NativeFactor, duration.NativeMaxBuckets = cfg.NativeBucketFactor, int(cfg.NativeMaxBuckets)
	}
	m := &Metrics{
		Lines: lines,
		requests: counter("requests_total", "Requests in the access logs, by api_service, route, method and status code.",
			"api_service", "route", "method", "code"),
		duration: lines.NewHistogram(namespace+"_request_duration_seconds",
			"Request time from the access logs, by api_service and route.", duration, "api_service", "route"),
		responseBytes: counter("response_size_bytes_total", "Response body bytes in the access logs, by api_service.", "api_service"),
		duplicates: counter("duplicate_requests_total",
			"Requests whose cache key was already seen within the duplicate window, by api_service.", "api_service"),
		userRequests: counter("user_requests_total", "Requests by user, plan tier and api_service.", "user", "tier", "api_service"),
		logLines: counter("exporter_log_lines_total", "Log lines read, by source and result (parsed, invalid, filtered).",
			"source", "result"),
		logLineErrors: counter("exporter_log_line_errors_total", "Invalid log lines by source and reason.", "source", "reason"),
		seriesOverflow: counter("exporter_series_overflow_total",
			"Requests whose label value was folded into __other__ by a cardinality cap, by reason (user_cap, route_cap, model_cap) and, for routes, the api_service whose cap it was.",
			"reason", "api_service"),
		dedupEvictions: counter("exporter_duplicate_window_evictions_total",
			"Cache keys forgotten before their window ended because duplicates.max_keys was reached."),
		cost: counter("cost_dollars_total",
			"Cost in dollars by api_service and model: token costs of model calls (model set), per-call costs of other services (model empty).",
			"api_service", "model"),
		egress:      counter("egress_cost_dollars_total", "Cost of response bytes (egress) in dollars, by api_service.", "api_service"),
		userCost:    userCostFamily(lines, cfg.UserCostByService),
		userTokens:  counter("user_tokens_total", "Model tokens (all directions) by user and plan tier.", "user", "tier"),
		llmRequests: counter("llm_requests_total", "Model calls by model and status (success, failure).", "model", "status"),
		llmTokens: counter("llm_tokens_total",
			"Model tokens by model and direction (input, output, cache_read, cache_write, reasoning: disjoint billing buckets).",
			"model", "direction"),
		llmRequestTokens: lines.NewHistogram(namespace+"_llm_request_tokens",
			"Prompt tokens per model call (input, cache reads and writes), from the access logs.",
			series.HistogramOpts{Buckets: requestTokenBuckets}, "model"),
		teamCost: counter("llm_team_cost_dollars_total", "LiteLLM spend in dollars by team.", "team"),
		orgRequests: counter("org_requests_total",
			"Requests by organisation (the line's org_id; orgs.max_orgs have a label, the rest __other__) and api_service.", "org", "api_service"),
		orgCost: counter("org_cost_dollars_total",
			"Cost in dollars by organisation and api_service: the calls' cost from the logs, or LiteLLM's spend by its org_id label.", "org", "api_service"),
		keyCost: counter("llm_api_key_cost_dollars_total", "LiteLLM spend in dollars by API key alias.", "api_key"),
		unpriced: counter("exporter_unpriced_requests_total",
			"Model calls that could not be priced, by model and reason (unknown_model, no_tokens); their tokens are counted.",
			"model", "reason"),
		logLastTime: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "log_last_timestamp_seconds",
			Help: "Timestamp of the newest parsed log line, by source.",
		}, []string{"source"}),
		logFirstTime: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "log_first_timestamp_seconds",
			Help: "Timestamp of the oldest log line the counters hold, by source: with log_last_timestamp_seconds, the time the counters cover.",
		}, []string{"source"}),
		checkpointOK: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "checkpoint_last_success_timestamp_seconds",
			Help: "When the state file (read positions, counters, ledger) was last known current: written, or found to hold everything at a checkpoint (nothing changed). The series show what it holds.",
		}),
		checkpointFails: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "checkpoint_errors_total",
			Help: "Failed writes of the state file.",
		}),
		checkpointBytes: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "checkpoint_size_bytes",
			Help: "Size of the state file last written.",
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
	m.reg = reg
	m.newProcessMetrics(f)
	return m
}

// userCostFamily is usage_user_cost_dollars_total, split by api_service
// when configured.
func userCostFamily(lines *series.Set, byService bool) *series.Family {
	if byService {
		return lines.NewCounter(namespace+"_user_cost_dollars_total",
			"Cost in dollars by user, plan tier and api_service (egress excluded).", "user", "tier", "api_service")
	}
	return lines.NewCounter(namespace+"_user_cost_dollars_total", "Cost in dollars by user and plan tier (egress excluded).",
		"user", "tier")
}

// initLines creates the lines' series that exist from the start, at zero,
// so that rate() and alerts see them before their first event. Call it
// after restoring the counters of a state file.
func (m *Metrics) initLines() {
	for _, r := range []string{overflowUser, overflowModel} {
		m.seriesOverflow.With(r, "")
	}
	m.dedupEvictions.With()
}

// dropUsers removes the per-user series of the user labels match accepts.
// dropOrgs removes the series of organisations match accepts.
func (m *Metrics) dropOrgs(match func(label string) bool) int {
	return m.orgRequests.Drop("org", match) + m.orgCost.Drop("org", match)
}

func (m *Metrics) dropUsers(match func(label string) bool) int {
	n := 0
	for _, f := range []*series.Family{m.userRequests, m.userCost, m.userTokens} {
		n += f.Drop("user", match)
	}
	return n
}

// enableRedis registers the Redis ledger's own series.
func (m *Metrics) enableRedis() {
	m.redisOnce.Do(func() { m.reg.MustRegister(m.redisUp, m.ledgerCommits, m.ledgerPaused, m.rollupPushErrors) })
}

// sharedLedger is what the Redis ledger updates.
func (m *Metrics) sharedLedger() quota.SharedMetrics {
	return quota.SharedMetrics{Up: m.redisUp, Commits: m.ledgerCommits}
}

func (m *Metrics) newProcessMetrics(f promauto.Factory) {
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return f.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	m.ledgerPending = f.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "exporter", Name: "ledger_pending_entries",
		Help: "Ledger entries (user and period) counted but not yet committed to Redis, or, without Redis, held (as of the last checkpoint)."})
	m.redisUp = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "exporter", Name: "redis_up",
		Help: "Whether the last Redis operation of the ledger succeeded."})
	m.ledgerCommits = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "ledger_commits_total", Help: "Batches of ledger increments committed to Redis."})
	m.ledgerPaused = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "ledger_backpressure_total",
		Help: "Times reading logs paused because redis.max_pending ledger entries were held while Redis was unreachable."})
	m.rollupPushErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "rollup_push_errors_total",
		Help: "Failed puts of the saved rollups in Redis, where the exporters sharing the ledger read windows (retried)."})
	m.price = gauge("price_dollars_per_token", "Price of one token by model (in use) and token type.", "model", "token_type")
	m.priceMatch = gauge("model_price_info", "The price table key a model name matched; always 1.", "model", "price_key")
	m.priceTable = gauge("price_table_info", "A loaded price file, with the SHA-256 of its content; always 1.", "source", "sha256")
	m.priceEntries = gauge("price_table_entries", "Models a loaded price file priced.", "source")
	m.priceLoadTime = f.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "price_table_last_load_timestamp_seconds",
		Help: "When the price table was last loaded successfully."})
	m.priceLoadOK = f.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "price_table_last_load_successful",
		Help: "Whether the last load of the price files succeeded (a failed reload keeps the previous table)."})
	// Registered once LiteLLM is configured.
	endpoint := []string{"target", "endpoint"}
	m.litellmUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "exporter", Name: "litellm_up",
		Help: "Whether the last scrape of a LiteLLM endpoint succeeded, by target (as configured) and endpoint (as scraped)."},
		endpoint)
	m.litellmDuration = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "litellm_scrape_duration_seconds", Help: "How long the last scrape of a LiteLLM endpoint took."}, endpoint)
	m.litellmLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "litellm_last_success_timestamp_seconds", Help: "When a LiteLLM endpoint was last scraped successfully."},
		endpoint)
	m.litellmEndpoints = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "litellm_endpoints", Help: "Endpoints scraped for a LiteLLM target: 1, or the addresses of a dns+ name."},
		[]string{"target"})
	m.litellmDiscovery = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "litellm_discovery_failures_total", Help: "Failed DNS lookups of a dns+ LiteLLM target (the last endpoints are kept)."},
		[]string{"target"})
	m.litellmRestarts = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "litellm_restarts_total",
		Help: "LiteLLM processes seen after a target's first (a new process start time: a restart, or another replica): each counts from zero."})
	m.litellmResets = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "litellm_series_resets_total",
		Help: "LiteLLM series that went down within one process: each was counted again from zero."})
	m.litellmProcesses = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "exporter",
		Name: "litellm_processes", Help: "LiteLLM processes whose counters are kept (seen within litellm.process_retention)."})
}

// enableLiteLLM registers the LiteLLM scrape's own series.
func (m *Metrics) enableLiteLLM() {
	m.litellmOnce.Do(func() {
		m.reg.MustRegister(m.litellmUp, m.litellmDuration, m.litellmLastSuccess, m.litellmEndpoints, m.litellmDiscovery,
			m.litellmRestarts, m.litellmResets, m.litellmProcesses)
	})
}

// setPriceTable publishes what the loaded price table is made of.
func (m *Metrics) setPriceTable(t *pricing.Table) {
	m.priceTable.Reset()
	m.priceEntries.Reset()
	for _, s := range t.Sources() {
		m.priceTable.WithLabelValues(s.Name, s.SHA256).Set(1)
		m.priceEntries.WithLabelValues(s.Name).Set(float64(s.Entries))
	}
	m.priceLoadOK.Set(1)
	m.priceLoadTime.SetToCurrentTime()
}

// initSource creates a source's series at zero, so that rate() and alerts
// see them before the first bad line.
func (m *Metrics) initSource(source string) {
	for _, r := range []string{resultParsed, resultInvalid, resultFiltered} {
		m.logLines.With(source, r)
	}
	for _, r := range logparse.Reasons {
		m.logLineErrors.With(source, string(r))
	}
}
