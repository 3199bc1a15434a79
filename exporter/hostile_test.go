package exporter

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
)

// Impossible input is an invalid line with a reason, never a number. Each
// of these made a number before: a line dated 2099 moved the quota period,
// one dated 9999 overflowed the first timestamp to 1816, size 9e18 added
// $810,000,000 of egress, input_tokens 1e12 $30,000,000 on gpt-4, cost 1e11
// was taken, and a 500,000-character user id became a label value.
func TestHostileLinesAreInvalid(t *testing.T) {
	line := func(ts, user, extra string) string {
		return fmt.Sprintf(`{"timestamp":"%s","user_id":"%s","path":"/api/v1/llm/chat/completions","status":200,"model":"gpt-4"%s}`+"\n",
			ts, user, extra)
	}
	good := "2025-11-15T11:00:00Z" // an hour before the test clock
	var data bytes.Buffer
	data.WriteString(line("2099-03-01T00:00:00Z", "future", `,"input_tokens":10,"output_tokens":10`))
	data.WriteString(line("9999-12-31T23:59:59Z", "future", `,"input_tokens":10,"output_tokens":10`))
	data.WriteString(line("2025-11-15T12:06:00Z", "skewed", `,"input_tokens":10,"output_tokens":10`)) // 6 min ahead
	data.WriteString(line("1999-01-01T00:00:00Z", "ancient", `,"input_tokens":10,"output_tokens":10`))
	data.WriteString(line(good, "big", `,"size":9e18`))
	data.WriteString(line(good, "big", `,"input_tokens":1000000000000,"output_tokens":1`))
	data.WriteString(line(good, "big", `,"cost":100000000000`))
	data.WriteString(line(good, "big", `,"input_tokens":10,"output_tokens":10,"duration_ms":172800000`))
	long := strings.Repeat("x", 500_000)
	data.WriteString(line(good, long, `,"input_tokens":1000,"output_tokens":500`))
	data.WriteString(line(good, "alice", `,"input_tokens":1000,"output_tokens":500`))
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	os.WriteFile(path, data.Bytes(), 0o644)

	cfg := testConfig("json")
	cfg.Logs.MaxLineBytes = 1 << 20
	reg, in := ingestFile(t, cfg, path)
	m := in.count.m
	for reason, want := range map[string]float64{"time": 4, "value": 4} {
		if got := m.logLineErrors.With("access.log", reason).Value(); got != want {
			t.Errorf("reason %s: %v invalid lines, want %v", reason, got, want)
		}
	}
	if got := m.logLines.With("access.log", resultParsed).Value(); got != 2 {
		t.Errorf("%v lines parsed, want 2", got)
	}
	// Only the two good calls cost anything: 1000 in and 500 out on gpt-4 each.
	if got := m.cost.With("llm", "gpt-4").Value(); got != 0.12 {
		t.Errorf("gpt-4 cost %v, want 0.12", got)
	}
	if got := testutil.ToFloat64(m.logFirstTime.WithLabelValues("access.log")); got != 1763204400 {
		t.Errorf("first timestamp %v, want 2025-11-15T11:00:00Z", got)
	}
	// The ledger's period is the clock's, and holds only the good lines.
	if v := in.quotaView(nil); v.period.ID != "2025-11-01" {
		t.Errorf("quota period %s, want the clock's, 2025-11-01", v.period.ID)
	}
	// The long user id is a hashed label, not 500,000 bytes.
	out, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, "usage_user_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("xxxxxxxxxxxxxxxx")) || !bytes.Contains(out, []byte(`user="hash:`)) {
		t.Errorf("the long user id is not hashed:\n%s", out)
	}

	// With labels.overlong: reject, the line is invalid instead.
	cfg.Labels.Overlong = OverlongReject
	_, in = ingestFile(t, cfg, path)
	if got := in.count.m.logLineErrors.With("access.log", "value").Value(); got != 5 {
		t.Errorf("reject: %v value errors, want 5", got)
	}
}

// One service's many routes fill its own cap; another service's routes
// keep their labels, and the overflow counter names the service. Before,
// 1,368 paths of one service filled the global cap, and every request of a
// second source went to __other__.
func TestRouteCapsPerService(t *testing.T) {
	var data bytes.Buffer
	for i := range 1368 {
		fmt.Fprintf(&data, `{"path":"/api/v1/search/q%dx/list","status":200}`+"\n", i) // one route each
	}
	for range 100 {
		data.WriteString(`{"path":"/api/v1/llm/chat/completions","status":200}` + "\n")
	}
	path := filepath.Join(t.TempDir(), "access.log")
	os.WriteFile(path, data.Bytes(), 0o644)
	_, in := ingestFile(t, testConfig("json"), path)
	m := in.count.m
	if got := m.requests.With("llm", "/api/v1/llm/chat/completions", "other", "200").Value(); got != 100 {
		t.Errorf("llm's route %v, want 100", got)
	}
	if got := m.seriesOverflow.With(overflowRoute, "search").Value(); got != 1368-500 {
		t.Errorf("search's overflow %v, want %d", got, 1368-500)
	}
	if got := m.seriesOverflow.With(overflowRoute, "llm").Value(); got != 0 {
		t.Errorf("llm's overflow %v, want 0", got)
	}
}

// Stock "combined" lines read with the default nginx format (which ends in
// $request_time) are syntax errors, as the runbook says, and the log names
// the variable. Before, all 29,480 were value errors.
func TestCombinedLinesWithDefaultNginxFormat(t *testing.T) {
	cfg := testConfig("nginx")
	var logged bytes.Buffer
	reg := prometheus.NewPedanticRegistry()
	d, in := newStages(t, cfg, reg)
	d.log = slog.New(slog.NewTextHandler(&logged, nil))
	var data bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&data, `10.0.0.%d - u%d [15/Nov/2025:11:00:00 +0000] "GET /api/v1/search?q=%d HTTP/1.1" 200 512 "-" "curl/8.0"`+"\n", i, i, i)
	}
	ingestSync(d, in, &tailer.Batch{Data: data.Bytes()})
	if got := in.count.m.logLineErrors.With("access.log", "syntax").Value(); got != 50 {
		t.Errorf("%v syntax errors, want 50", got)
	}
	if got := in.count.m.logLineErrors.With("access.log", "value").Value(); got != 0 {
		t.Errorf("%v value errors, want 0", got)
	}
	if !strings.Contains(logged.String(), "$request_time") || strings.Count(logged.String(), "invalid log line") != 1 {
		t.Errorf("the log should name $request_time, once:\n%s", logged.String())
	}
}
