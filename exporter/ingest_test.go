package exporter

import (
	"bytes"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/series"
	"github.com/usage-exporter/usage-exporter/exporter/state"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// contractFamilies are the families the ingest path writes.
var contractFamilies = []string{
	"usage_requests_total",
	"usage_request_duration_seconds",
	"usage_response_size_bytes_total",
	"usage_duplicate_requests_total",
	"usage_user_requests_total",
	"usage_exporter_log_lines_total",
	"usage_exporter_log_line_errors_total",
	"usage_exporter_log_last_timestamp_seconds",
	"usage_exporter_series_overflow_total",
}

// costFamilies are the families the pricing path writes.
var costFamilies = []string{
	"usage_cost_dollars_total",
	"usage_egress_cost_dollars_total",
	"usage_user_cost_dollars_total",
	"usage_user_tokens_total",
	"usage_llm_requests_total",
	"usage_llm_tokens_total",
	"usage_llm_request_tokens",
	"usage_exporter_unpriced_requests_total",
	"usage_price_dollars_per_token",
	"usage_model_price_info",
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newStages builds both ingest stages for cfg.
func newStages(t testing.TB, cfg *Config, reg prometheus.Registerer) (*decoder, *ingester) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(reg, cfg.Metrics, func() time.Time { return time.Date(2025, 10, 24, 15, 0, 0, 0, time.UTC) })
	m.initLines()
	prices, err := pricing.Load(cfg.Pricing)
	if err != nil {
		t.Fatal(err)
	}
	tiers := plans.NewResolver(cfg.Plans, cfg.Quota.TierSources, nil)
	var st carried
	if cfg.Rollups.Days > 0 {
		dir, err := state.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dir.Close() })
		if st.rollups, err = openRollups(cfg.Rollups.Days, dir, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	in, err := newIngester(cfg, m, prices, tiers, quota.NewEmbedded(nil), st, testNow)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDecoder(cfg, in.attr.classifier.Services(), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	return d, in
}

// ingestSync runs both stages in the caller's goroutine.
func ingestSync(d *decoder, in *ingester, b *tailer.Batch) {
	eb := d.decode(b)
	in.ingest(eb)
	putEventBatch(eb)
}

// ingestFile feeds a whole file to fresh stages, as one batch.
func ingestFile(t *testing.T, cfg *Config, file string) (*prometheus.Registry, *ingester) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	d, in := newStages(t, cfg, reg)
	reg.MustRegister(in.count.m.Lines)
	d.now, in.attr.now = testNow, testNow
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ingestSync(d, in, &tailer.Batch{Source: 0, Data: data})
	publish(in)
	return reg, in
}

// compareGolden checks the exposition against a golden file; -update rewrites it.
func compareGolden(t *testing.T, reg prometheus.Gatherer, golden string, families ...string) {
	t.Helper()
	path := filepath.Join("testdata", golden)
	if *update {
		out, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, families...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, bytes.NewReader(want), families...); err != nil {
		t.Fatalf("exposition differs from %s (rerun with -update if intended):\n%v", path, err)
	}
}

func testConfig(format string) *Config {
	cfg := DefaultConfig()
	cfg.Logs.Sources = []SourceConfig{{Path: "access.log"}}
	cfg.Logs.Sources[0].Format = format
	cfg.Classify.IgnorePaths = []string{"/healthz"}
	return &cfg
}

func TestIngestJSONGolden(t *testing.T) {
	reg, _ := ingestFile(t, testConfig("json"), "testdata/access-json.log")
	compareGolden(t, reg, "ingest-json.golden.prom", contractFamilies...)
}

func TestIngestNginxGolden(t *testing.T) {
	reg, _ := ingestFile(t, testConfig("nginx"), "testdata/access-nginx.log")
	compareGolden(t, reg, "ingest-nginx.golden.prom", contractFamilies...)
}

// TestIngestJSONCounts pins the numbers of the JSON sample by hand, so that
// the golden file is not the only witness.
func TestIngestJSONCounts(t *testing.T) {
	_, in := ingestFile(t, testConfig("json"), "testdata/access-json.log")
	m := in.count.m
	checks := []struct {
		name string
		c    any
		want float64
	}{
		// 23 lines: 1 filtered (/healthz), 6 invalid (negative duration, truncated,
		// not JSON, NUL in user, status "OK", empty line), 16 parsed.
		{"parsed", m.logLines.With("access.log", resultParsed), 16},
		{"invalid", m.logLines.With("access.log", resultInvalid), 6},
		{"filtered", m.logLines.With("access.log", resultFiltered), 1},
		{"syntax errors", m.logLineErrors.With("access.log", "syntax"), 3},
		{"value errors", m.logLineErrors.With("access.log", "value"), 2},
		{"encoding errors", m.logLineErrors.With("access.log", "encoding"), 1},
		{"llm 200", m.requests.With("llm", "/api/v1/llm/chat/completions", "POST", "200"), 4},
		{"v1 chat is llm", m.requests.With("llm", "/v1/chat/completions", "POST", "500"), 1},
		{"ids collapse", m.requests.With("other", "/api/v1/users/:id/usage", "GET", "200"), 1},
		{"unknown method", m.requests.With("tts", "/api/v1/tts", "other", "503"), 1},
		{"lower-case method", m.requests.With("search", "/api/v1/search", "other", "201"), 1},
		// k1 repeats within the hour: llm sees it 4 times (3 repeats); embeddings once.
		{"llm duplicates", m.duplicates.With("llm"), 3},
		{"embeddings duplicates", m.duplicates.With("embeddings"), 0},
		{"llm bytes", m.responseBytes.With("llm"), 1024 + 2048 + 150 + 150 + 1500 + 1500},
		// An unknown tier in the line ("gold") falls back to the default tier.
		{"admin professional", m.userRequests.With("admin@example.com", "professional", "llm"), 3},
		{"admin unknown tier", m.userRequests.With("admin@example.com", "unknown", "llm"), 1},
		{"last timestamp", m.logLastTime.WithLabelValues("access.log"), 1761316355},
	}
	for _, c := range checks {
		if got := read(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestUserCapRouteCapAndLabelPolicy(t *testing.T) {
	cfg := testConfig("json")
	cfg.Users.MaxUsers = 2
	cfg.Users.Label = UserLabelHashed
	cfg.Users.HashKey = "secret"
	cfg.Classify.MaxRoutes = 1
	reg, in := ingestFile(t, cfg, "testdata/access-json.log")
	m := in.count.m
	// Users in order of appearance: admin, dev, then trial-user and ops fold.
	if got := m.seriesOverflow.With(overflowUser, "").Value(); got != 5 {
		t.Errorf("user overflow = %v, want 5", got)
	}
	// One route per service: llm keeps chat/completions (its /v1 one folds),
	// search its first (suggest folds), other the users' usage route (jobs
	// folds); the others have one route each.
	for svc, want := range map[string]float64{"llm": 1, "search": 1, "other": 1, "embeddings": 0, "tts": 0} {
		if got := m.seriesOverflow.With(overflowRoute, svc).Value(); got != want {
			t.Errorf("%s route overflow = %v, want %v", svc, got, want)
		}
	}
	if got := m.requests.With("search", otherLabel, "GET", "200").Value(); got != 1 {
		t.Errorf("folded search route = %v, want 1: a folded route keeps its service", got)
	}
	out, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, "usage_user_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "example.com") {
		t.Errorf("hashed policy leaked a raw user id:\n%s", out)
	}
}

func TestIngestLLMGolden(t *testing.T) {
	reg, _ := ingestFile(t, testConfig("json"), "testdata/access-llm.log")
	compareGolden(t, reg, "ingest-llm.golden.prom", costFamilies...)
}

// TestIngestLLMCosts pins the costs of the LLM sample, computed by hand
// from the default price table.
func TestIngestLLMCosts(t *testing.T) {
	_, in := ingestFile(t, testConfig("json"), "testdata/access-llm.log")
	m := in.count.m
	near := func(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }
	checks := []struct {
		name string
		c    any
		want float64
	}{
		// gpt-4, 1,000 in and 500 out: exactly 0.06.
		{"gpt-4 cost", m.cost.With("llm", "gpt-4"), 0.06},
		// OpenAI convention: 10,000 prompt incl. 4,000 cached, 2,000 completion incl. 500 reasoning.
		{"gpt-4o cost", m.cost.With("llm", "openai/gpt-4o"), (6000*2.5 + 4000*1.25 + 1500*10 + 500*10) / 1e6},
		{"gpt-4o cached", m.llmTokens.With("openai/gpt-4o", "cache_read"), 4000},
		{"gpt-4o input", m.llmTokens.With("openai/gpt-4o", "input"), 6000},
		{"gpt-4o reasoning", m.llmTokens.With("openai/gpt-4o", "reasoning"), 500},
		// Anthropic convention: cache reads and writes on top of the input.
		{"claude cost", m.cost.With("llm", "claude-3-5-sonnet"), (1000*3 + 20000*0.3 + 5000*3.75 + 800*15) / 1e6},
		{"claude cache writes", m.llmTokens.With("claude-3-5-sonnet", "cache_write"), 5000},
		// A logged cost is taken as it is, even for a model without a price.
		{"logged cost", m.cost.With("llm", "custom-finetune"), 0.0042},
		{"unknown model", m.unpriced.With("in-house-llm", "unknown_model"), 1},
		{"unknown model tokens still counted", m.llmTokens.With("in-house-llm", "input"), 300},
		{"no tokens", m.unpriced.With("gpt-4", "no_tokens"), 1},
		{"failed call", m.llmRequests.With("gpt-4", "failure"), 1},
		{"gpt-4 calls", m.llmRequests.With("gpt-4", "success"), 2},
		// Per-call prices for calls without tokens, successful ones only.
		{"embeddings per call + tokens", m.cost.With("embeddings", ""), 0.001},
		{"embedding model", m.cost.With("embeddings", "text-embedding-3-small"), 5000 * 0.02 / 1e6},
		{"search per call", m.cost.With("search", ""), 0.0005},
		{"tts per call", m.cost.With("tts", ""), 0.0015},
		{"egress", m.egress.With("embeddings"), (1e6 + 6000) * 0.09 / 1e9},
		{"alice cost", m.userCost.With("alice", "professional"), 0.06 + 0.04},
		{"alice tokens", m.userTokens.With("alice", "professional"), 1500 + 12000},
		{"bob tokens", m.userTokens.With("bob", "unknown"), 26800 + 400 + 400},
		{"carol cost (embeddings, search)", m.userCost.With("carol", "unknown"), 0.001 + 0.0001 + 0.0005},
		{"gpt-4o input price", m.price.WithLabelValues("openai/gpt-4o", "input"), 2.5e-6},
		{"price key matched", m.priceMatch.WithLabelValues("openai/gpt-4o", "gpt-4o"), 1},
	}
	for _, c := range checks {
		if got := read(c.c); !near(got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if got := m.cost.With("llm", "gpt-4").Value(); got != 0.06 {
		t.Errorf("gpt-4 cost %v is not exactly 0.06", got)
	}
}

// With LiteLLM as the source of spend, model calls in the logs are not
// priced (LiteLLM reports them); per-call services still are.
func TestLiteLLMSpendSkipsLoggedModelCalls(t *testing.T) {
	cfg := testConfig("json")
	cfg.LiteLLM.URL = "http://litellm:4000"
	_, in := ingestFile(t, cfg, "testdata/access-llm.log")
	if got := in.count.m.cost.With("llm", "gpt-4").Value(); got != 0 {
		t.Errorf("gpt-4 cost from logs %v, want 0: LiteLLM is the source", got)
	}
	if got := in.count.m.cost.With("search", "").Value(); got != 0.0005 {
		t.Errorf("search per-call cost %v, want 0.0005", got)
	}
	spend := true
	cfg.Logs.Sources[0].Spend = &spend
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "would count them twice") {
		t.Errorf("both sources of spend accepted: %v", err)
	}
}

// read is a metric's value, a series of the lines' set or a client_golang metric.
func read(c any) float64 {
	if s, ok := c.(*series.Series); ok {
		return s.Value()
	}
	return testutil.ToFloat64(c.(prometheus.Collector))
}

// publish makes what the stages counted visible to gatherers, as a
// checkpoint and a scrape of the new series at zero do.
// saved takes a checkpoint and publishes it as a saved one does: the
// series (released, as after a scrape), the ledger and the quota view.
func saved(in *ingester, q *quotas) {
	snap := in.snapshot(testNow())
	in.ledger.store.Saved(snap.quota)
	if snap.rollups != nil {
		in.rollups.Saved(snap.rollups)
	}
	q.view.Store(snap.view)
	publish(in)
}

func publish(in *ingester) { releaseAll(in.count.m.Lines) }

// An nginx line of the model service names no model and carries no
// tokens: it is counted as unpriced (no_model), never as free, unless the
// service has a per-call price; with LiteLLM as the source of spend,
// LiteLLM prices it.
func TestModelCallsWithoutAModel(t *testing.T) {
	lines := []byte(`10.0.0.1 - u1 [24/Oct/2025:10:00:00 +0000] "POST /api/v1/llm/chat/completions HTTP/1.1" 200 512 "-" "curl" 0.812
10.0.0.1 - u1 [24/Oct/2025:10:00:01 +0000] "POST /api/v1/llm/chat/completions HTTP/1.1" 200 512 "-" "curl" 0.700
10.0.0.1 - u2 [24/Oct/2025:10:00:02 +0000] "POST /api/v1/llm/chat/completions HTTP/1.1" 500 0 "-" "curl" 0.100
10.0.0.1 - u2 [24/Oct/2025:10:00:03 +0000] "POST /api/v1/search HTTP/1.1" 200 100 "-" "curl" 0.050
`)
	run := func(cfg *Config) *ingester {
		d, in := newStages(t, cfg, prometheus.NewRegistry())
		d.now, in.attr.now = testNow, testNow
		ingestSync(d, in, &tailer.Batch{Data: lines})
		publish(in)
		return in
	}
	in := run(testConfig("nginx"))
	m := in.count.m
	if got := m.unpriced.With("", "no_model").Value(); got != 2 {
		t.Errorf("unpriced no_model %v, want 2 (the failed call cost nothing)", got)
	}
	if got := m.cost.With("llm", "").Value(); got != 0 {
		t.Errorf("llm cost %v, want 0", got)
	}
	priced := testConfig("nginx")
	priced.Pricing.PerCall["llm"] = 0.002
	m = run(priced).count.m
	if got, un := m.cost.With("llm", "").Value(), m.unpriced.With("", "no_model").Value(); got != 0.004 || un != 0 {
		t.Errorf("with a per-call price: cost %v unpriced %v, want 0.004 and 0", got, un)
	}
	litellm := testConfig("nginx")
	litellm.LiteLLM.URL = "http://litellm:4000"
	if un := run(litellm).count.m.unpriced.With("", "no_model").Value(); un != 0 {
		t.Errorf("LiteLLM prices model calls, yet %v unpriced", un)
	}
}
