package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/promtest"
	"github.com/usage-exporter/usage-exporter/optimizer"
)

// history is a generated month of gateway lines and what they hold,
// counted by the generator.
type history struct {
	lines                   [][]byte
	calls, cost             map[string]map[string]float64 // by day, by api_service
	userCalls               map[string]map[string]float64 // by day, by user
	perHour                 [24]float64
	durations               map[string][]float64 // by api_service, seconds
	serviceCalls, totalCost map[string]float64
}

// monthOfLines writes 29 days of traffic, from start: per day 24 hours of
// calls, busiest in the afternoon, of three services and users; llm lines
// log their cost, embeddings and search are priced per call; some lines are
// malformed.
func monthOfLines(start time.Time) *history {
	h := &history{calls: map[string]map[string]float64{}, cost: map[string]map[string]float64{},
		userCalls: map[string]map[string]float64{}, durations: map[string][]float64{},
		serviceCalls: map[string]float64{}, totalCost: map[string]float64{}}
	perCall := map[string]float64{"embeddings": 0.001, "search": 0.0005}
	users := []string{"alice@example.com", "bob@example.com", "carol@example.com"}
	i := 0
	for d := range 29 {
		day := start.Add(time.Duration(d) * 24 * time.Hour)
		key := day.Format("2006-01-02")
		h.calls[key], h.cost[key], h.userCalls[key] = map[string]float64{}, map[string]float64{}, map[string]float64{}
		for hour := range 24 {
			n := 2 + int(10*math.Exp(-math.Pow(float64(hour-14)/3, 2)))
			for k := range n {
				i++
				t := day.Add(time.Duration(hour)*time.Hour + time.Duration(k)*time.Hour/time.Duration(n) + time.Duration(i%997)*time.Millisecond)
				svc := []string{"llm", "embeddings", "search"}[i%3]
				user := users[i%len(users)]
				ms := 20 + (i*37)%1900
				status, extra, cost := 200, "", perCall[svc]
				if svc == "llm" {
					cost = float64(1+i%9) / 1000
					extra = fmt.Sprintf(`,"model":"gpt-4","input_tokens":%d,"output_tokens":%d,"cost":%g`, 100+i%50, 20+i%7, cost)
				}
				if svc == "search" && i%11 == 0 {
					status, cost = 500, 0
				}
				h.lines = append(h.lines, fmt.Appendf(nil, `{"timestamp":"%s","user_id":"%s","method":"POST","path":"/api/v1/%s/x","status":%d,"duration_ms":%d,"size":100,"service":"%s"%s}`+"\n",
					t.UTC().Format("2006-01-02T15:04:05.000Z"), user, svc, status, ms, svc, extra))
				h.calls[key][svc]++
				h.cost[key][svc] += cost
				h.userCalls[key][user]++
				h.perHour[t.UTC().Hour()]++
				h.durations[svc] = append(h.durations[svc], float64(ms)/1000)
				h.serviceCalls[svc]++
				h.totalCost[svc] += cost
				if i%500 == 0 {
					h.lines = append(h.lines, []byte("{not json\n"))
				}
			}
		}
	}
	return h
}

func writeGz(t *testing.T, path string, lines [][]byte, mtime time.Time) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	for _, l := range lines {
		zw.Write(l)
	}
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, mtime, mtime)
}

func instantValues(t *testing.T, prom *promtest.Server, q string, at time.Time, label string) map[string]float64 {
	t.Helper()
	return prom.ValuesAt(t, q, at, func(m map[string]string) string { return m[label] })
}

// A month of logs (two gzipped rotations and the live file) backfilled by
// the real binary into TSDB blocks, read by a real Prometheus: the daily
// calls and cost per service and the daily calls per user are the log's,
// exactly; the p95 per service lies in the bucket of the log's own; the
// optimizer's Prometheus source over 30 days agrees (calls exact, cost to
// 1e-6, the hours of the day the log's). Then the live exporter starts from
// the backfill's state and counts on from there: no line twice.
func TestBackfillIntoPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts prometheus")
	}
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Minute)
	// 29 whole days, the last ending before now, all inside the last 30 days.
	start := now.Add(-29 * 24 * time.Hour).Truncate(24 * time.Hour)
	h := monthOfLines(start)
	third := len(h.lines) / 3
	logPath := filepath.Join(dir, "gateway.log")
	writeGz(t, logPath+".2.gz", h.lines[:third], now.Add(-20*24*time.Hour))
	writeGz(t, logPath+".1.gz", h.lines[third:2*third], now.Add(-10*24*time.Hour))
	if err := os.WriteFile(logPath, bytes.Join(h.lines[2*third:], nil), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "usage-exporter.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`logs:
  sources: [{path: %q, format: json}]
pricing:
  per_call: {embeddings: 0.001, search: 0.0005}
  egress_per_gb: 0
`, logPath)), 0o644)

	promDir := t.TempDir()
	blocks, seam := filepath.Join(promDir, "data"), filepath.Join(dir, "state")
	out, err := command("backfill", "--config.file="+cfg, "--from="+start.Format("2006-01-02"), "--to="+now.Format(time.RFC3339),
		"--out="+blocks, "--state.out="+seam, "--label=job=usage-exporter", "--label=instance=gateway:9816").CombinedOutput()
	if err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	var lines int
	for _, l := range h.lines {
		if l[0] == '{' && l[1] == '"' {
			lines++
		}
	}
	if !strings.Contains(string(out), fmt.Sprintf("backfill: %d lines", lines)) || !strings.Contains(string(out), fmt.Sprintf("syntax %d", len(h.lines)-lines)) {
		t.Errorf("backfill reported:\n%s\nwant %d lines, %d syntax errors", out, lines, len(h.lines)-lines)
	}
	t.Logf("%s", out)

	prom := promtest.StartConfig(t, "global: {scrape_interval: 1m}\n", promDir, "--storage.tsdb.retention.time=400d")
	for d := range 29 {
		day := start.Add(time.Duration(d) * 24 * time.Hour)
		key := day.Format("2006-01-02")
		end := day.Add(24 * time.Hour)
		if end.After(now) {
			end = now
		}
		for _, q := range []struct {
			query, label string
			want         map[string]float64
			tolerance    float64
		}{
			{`sum by (api_service) (usage_requests_total)`, "api_service", h.calls[key], 0},
			{`sum by (user) (usage_user_requests_total)`, "user", h.userCalls[key], 0},
			{`sum by (api_service) (usage_cost_dollars_total)`, "api_service", h.cost[key], 1e-9},
		} {
			before := instantValues(t, prom, q.query, day, q.label)
			after := instantValues(t, prom, q.query, end, q.label)
			for k, want := range q.want {
				if got := after[k] - before[k]; math.Abs(got-want) > q.tolerance {
					t.Errorf("%s %s %s: %v, the log %v", key, q.query, k, got, want)
				}
			}
		}
	}
	// p95 per service from the buckets at the end: in the classic bucket
	// that holds the log's own p95.
	bounds := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	p95 := instantValues(t, prom, `histogram_quantile(0.95, sum by (api_service, le) (usage_request_duration_seconds_bucket))`, now, "api_service")
	for svc, ds := range h.durations {
		slices.Sort(ds)
		exact := ds[int(math.Ceil(0.95*float64(len(ds))))-1]
		i, _ := slices.BinarySearch(bounds, exact)
		lo := 0.0
		if i > 0 {
			lo = bounds[i-1]
		}
		if got := p95[svc]; got < lo || got > bounds[i] {
			t.Errorf("p95 of %s: %v, the log's %v in (%v, %v]", svc, got, exact, lo, bounds[i])
		}
	}

	// The optimizer's Prometheus source over 30 days.
	q, err := optimizer.NewQuerier(prom.URL)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := (&optimizer.PrometheusSource{Q: q}).Snapshot(context.Background(), 30, now)
	if err != nil {
		t.Fatal(err)
	}
	for svc, want := range h.serviceCalls {
		if got := snap.Services[svc]; got == nil || got.Calls != want || math.Abs(got.Cost-h.totalCost[svc]) > 1e-6 {
			t.Errorf("optimizer %s: %+v, want %v calls, $%v", svc, got, want, h.totalCost[svc])
		}
	}
	// The recorded sums' history is written too, equal to the raw series,
	// and the optimizer read them.
	if len(snap.RecordingRules) != len(optimizer.RecordedSums) {
		t.Errorf("the optimizer read the recorded sums %v, want all %d", snap.RecordingRules, len(optimizer.RecordedSums))
	}
	for _, sum := range optimizer.RecordedSums {
		raw := instantValues(t, prom, "sum("+sum.Metric+")", now, "")
		rec := instantValues(t, prom, "sum("+sum.Record+")", now, "")
		if raw[""] == 0 || math.Abs(raw[""]-rec[""]) > 1e-9 {
			t.Errorf("%s %v, %s %v", sum.Record, rec[""], sum.Metric, raw[""])
		}
	}
	for hour, want := range h.perHour {
		if snap.Hourly[hour] != want {
			t.Errorf("optimizer hour %d: %v calls, the log %v", hour, snap.Hourly[hour], want)
		}
	}

	// The seam: the live exporter continues from the backfill's state.
	extra := [][]byte{}
	for k := range 50 {
		extra = append(extra, fmt.Appendf(nil, `{"timestamp":"%s","user_id":"dave@example.com","method":"GET","path":"/api/v1/search/x","status":200,"duration_ms":5,"service":"search"}`+"\n",
			time.Now().UTC().Add(time.Duration(k)*time.Millisecond).Format("2006-01-02T15:04:05.000Z")))
	}
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0o644)
	f.Write(bytes.Join(extra, nil))
	f.Close()
	addr := freePort(t)
	live := command("--config.file="+cfg, "--state.dir="+seam, "--web.listen-address="+addr, "--log.start=checkpoint")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	want := float64(lines + len(extra))
	waitFor(t, "the live exporter's counters", func() bool {
		body := scrape(addr)
		var total float64
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "usage_requests_total{") {
				v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
				total += v
			}
		}
		return total == want
	})
}

// An exporter already running (started at the end of its log) and a backfill
// of the same log with --until-checkpoint: the history stops where the live
// exporter's lines begin, so no line is in both.
func TestBackfillUntilALiveCheckpoint(t *testing.T) {
	dir := t.TempDir()
	logPath, stateDir := filepath.Join(dir, "gateway.log"), filepath.Join(dir, "state")
	line := func(at time.Time) string {
		return fmt.Sprintf(`{"timestamp":"%s","user_id":"u","method":"GET","path":"/api/v1/search/x","status":200,"duration_ms":5,"service":"search"}`+"\n",
			at.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	now := time.Now().UTC()
	var old strings.Builder
	for k := range 300 { // the history: the last five hours, a line a minute
		old.WriteString(line(now.Add(-5*time.Hour + time.Duration(k)*time.Minute)))
	}
	os.WriteFile(logPath, []byte(old.String()), 0o644)
	addr := freePort(t)
	live := command("--log.path="+logPath, "--log.format=json", "--state.dir="+stateDir, "--web.listen-address="+addr, "--log.start=end")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the live exporter", func() bool { return strings.Contains(scrape(addr), "usage_exporter_log_files") })
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0o644)
	for k := range 40 { // what the live exporter reads
		f.WriteString(line(time.Now().Add(time.Duration(k) * time.Millisecond)))
	}
	f.Close()
	waitFor(t, "the live lines", func() bool {
		return strings.Contains(scrape(addr), `usage_exporter_log_lines_total{result="parsed",source="`+logPath+`"} 40`)
	})
	live.Process.Signal(syscall.SIGTERM)
	if err := live.Wait(); err != nil {
		t.Fatal(err)
	}
	out, err := command("backfill", "--log.path="+logPath, "--log.format=json", "--from="+now.Add(-6*time.Hour).Format(time.RFC3339),
		"--out="+filepath.Join(dir, "blocks"), "--until-checkpoint="+stateDir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "backfill: 300 lines") {
		t.Errorf("the history should hold the 300 lines before the live exporter's:\n%s", out)
	}
}
