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
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
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

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newStages builds both ingest stages for cfg.
func newStages(t testing.TB, cfg *Config, reg prometheus.Registerer) (*decoder, *ingester) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(reg, cfg.Metrics)
	in, err := newIngester(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDecoder(cfg, m, in.classifier.Services(), discardLogger())
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
	fixed := func() time.Time { return time.Date(2025, 10, 24, 15, 0, 0, 0, time.UTC) }
	d.now, in.now = fixed, fixed
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ingestSync(d, in, &tailer.Batch{Source: 0, Data: data})
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
	m := in.m
	checks := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		// 23 lines: 1 filtered (/healthz), 6 invalid (negative duration, truncated,
		// not JSON, NUL in user, status "OK", empty line), 16 parsed.
		{"parsed", m.logLines.WithLabelValues("access.log", resultParsed), 16},
		{"invalid", m.logLines.WithLabelValues("access.log", resultInvalid), 6},
		{"filtered", m.logLines.WithLabelValues("access.log", resultFiltered), 1},
		{"syntax errors", m.logLineErrors.WithLabelValues("access.log", "syntax"), 3},
		{"value errors", m.logLineErrors.WithLabelValues("access.log", "value"), 2},
		{"encoding errors", m.logLineErrors.WithLabelValues("access.log", "encoding"), 1},
		{"llm 200", m.requests.WithLabelValues("llm", "/api/v1/llm/chat/completions", "POST", "200"), 4},
		{"v1 chat is llm", m.requests.WithLabelValues("llm", "/v1/chat/completions", "POST", "500"), 1},
		{"ids collapse", m.requests.WithLabelValues("other", "/api/v1/users/:id/usage", "GET", "200"), 1},
		{"unknown method", m.requests.WithLabelValues("tts", "/api/v1/tts", "other", "503"), 1},
		{"lower-case method", m.requests.WithLabelValues("search", "/api/v1/search", "other", "201"), 1},
		// k1 repeats within the hour: llm sees it 4 times (3 repeats); embeddings once.
		{"llm duplicates", m.duplicates.WithLabelValues("llm"), 3},
		{"embeddings duplicates", m.duplicates.WithLabelValues("embeddings"), 0},
		{"llm bytes", m.responseBytes.WithLabelValues("llm"), 1024 + 2048 + 150 + 150 + 1500 + 1500},
		// An unknown tier in the line ("gold") falls back to the default tier.
		{"admin professional", m.userRequests.WithLabelValues("admin@example.com", "professional", "llm"), 3},
		{"admin unknown tier", m.userRequests.WithLabelValues("admin@example.com", "unknown", "llm"), 1},
		{"last timestamp", m.logLastTime.WithLabelValues("access.log"), 1761316355},
	}
	for _, c := range checks {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestUserCapRouteCapAndLabelPolicy(t *testing.T) {
	cfg := testConfig("json")
	cfg.Users.MaxUsers = 2
	cfg.Users.Label = UserLabelHashed
	cfg.Users.HashKey = "secret"
	cfg.Classify.MaxRoutes = 2
	reg, in := ingestFile(t, cfg, "testdata/access-json.log")
	m := in.m
	// Users in order of appearance: admin, dev, then trial-user and ops fold.
	if got := testutil.ToFloat64(m.seriesOverflow.WithLabelValues(overflowUser)); got != 5 {
		t.Errorf("user overflow = %v, want 5", got)
	}
	// Routes: chat/completions and embeddings; 9 later requests fold.
	if got := testutil.ToFloat64(m.seriesOverflow.WithLabelValues(overflowRoute)); got != 9 {
		t.Errorf("route overflow = %v, want 9", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("search", otherLabel, "POST", "200")); got != 1 {
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
