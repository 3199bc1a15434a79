package optimizer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/usage-exporter/usage-exporter/exporter"
	"github.com/usage-exporter/usage-exporter/exporter/storage"
	"github.com/usage-exporter/usage-exporter/internal/promtest"
)

// traffic is what a block of generated gateway lines holds, counted by the
// generator itself (not by the exporter).
type traffic struct {
	lines       int
	calls       map[string]float64 // by api_service
	errors      map[string]float64
	users       map[string]float64 // calls by user
	userTier    map[string]string
	orgCalls    map[string]float64 // by org_id: alice's and bob's lines are acme's, carol's globex's
	orgCost     map[string]float64 // model and per-call dollars (egress is no one's)
	cost        float64            // model, per-call and egress dollars
	gpt4Input   float64
	gpt4Output  float64
	gpt4Calls   float64
	unpriced    float64 // llm calls that name no model
	bytes       float64
	first, last time.Time
}

// gatewayLines writes n JSON lines as the gateway logs them: in every ten,
// five gpt-4 chat calls (3,000 prompt and 200 output tokens), three
// embeddings (one a 500) and two searches (one a 404); one chat call in
// fifty names no model (unpriced).
func gatewayLines(w io.Writer, n int, start time.Time) traffic {
	tr := traffic{calls: map[string]float64{}, errors: map[string]float64{}, users: map[string]float64{},
		orgCalls: map[string]float64{}, orgCost: map[string]float64{},
		userTier: map[string]string{"alice@example.com": "professional", "bob@example.com": "starter", "carol@example.com": "trial"}}
	perCall := map[string]float64{"embeddings": 0.001, "search": 0.0005}
	for i := 0; i < n; i++ {
		ts := start.Add(time.Duration(i) * time.Millisecond)
		var svc, path, user, extra string
		status, size := 200, 1000+i%7*100
		switch k := i % 10; {
		case k < 5:
			svc, path, user = "llm", "/api/v1/llm/chat/completions", "alice@example.com"
			if k == 4 {
				user = "bob@example.com"
			}
			if i%50 == 1 {
				tr.unpriced++
				break
			}
			extra = fmt.Sprintf(`,"model":"gpt-4","input_tokens":3000,"output_tokens":200,"cache_key":"k%d"`, i%40)
			tr.gpt4Calls++
			tr.gpt4Input += 3000
			tr.gpt4Output += 200
			tr.cost += 3000*30e-6 + 200*60e-6
			tr.orgCost["acme"] += 3000*30e-6 + 200*60e-6
		case k < 8:
			svc, path, user = "embeddings", "/api/v1/embeddings", "carol@example.com"
			if k == 7 {
				status = 500
			}
		default:
			svc, path, user = "search", "/api/v1/search", "bob@example.com"
			if k == 9 {
				status = 404
			}
		}
		org := map[string]string{"alice@example.com": "acme", "bob@example.com": "acme", "carol@example.com": "globex"}[user]
		if status >= 400 {
			tr.errors[svc]++
		} else {
			tr.cost += perCall[svc]
			tr.orgCost[org] += perCall[svc]
		}
		tr.orgCalls[org]++
		tr.cost += float64(size) * 0.09 / 1e9
		tr.bytes += float64(size)
		tr.calls[svc]++
		tr.users[user]++
		fmt.Fprintf(w, `{"timestamp":%q,"user_id":%q,"org_id":%q,"method":"POST","path":%q,"status":%d,"duration_ms":%d,"size":%d,"service":%q,"tier":%q%s}`+"\n",
			ts.UTC().Format("2006-01-02T15:04:05.000Z"), user, org, path, status, 50+i%10*100, size, svc, tr.userTier[user], extra)
		if i == 0 {
			tr.first = ts.Truncate(time.Millisecond)
		}
		tr.last = ts.Truncate(time.Millisecond)
	}
	tr.lines = n
	return tr
}

// merge adds o's figures to tr's.
func (tr *traffic) merge(o traffic) {
	add := func(dst, src map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range dst {
			out[k] += v
		}
		for k, v := range src {
			out[k] += v
		}
		return out
	}
	tr.calls, tr.errors, tr.users = add(tr.calls, o.calls), add(tr.errors, o.errors), add(tr.users, o.users)
	tr.cost += o.cost
	tr.gpt4Input += o.gpt4Input
	tr.gpt4Output += o.gpt4Output
	tr.gpt4Calls += o.gpt4Calls
	tr.unpriced += o.unpriced
	tr.bytes += o.bytes
	tr.lines += o.lines
	tr.last = o.last
}

func (tr traffic) total() float64 {
	var n float64
	for _, c := range tr.calls {
		n += c
	}
	return n
}

func appendLines(t *testing.T, path string, n int, start time.Time) traffic {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return gatewayLines(f, n, start)
}

// startExporter runs the exporter in-process on a loopback port, reading path.
func startExporter(t *testing.T, path string) (url string, reg prometheus.Gatherer) {
	t.Helper()
	cfg := exporter.DefaultConfig()
	cfg.Logs.Sources = []exporter.SourceConfig{{Path: path, Config: cfg.Logs.Sources[0].Config}}
	cfg.Logs.Sources[0].Format = "json"
	// The log's directory is a storage volume: usage_storage_bytes is served.
	cfg.Storage.Volumes = []storage.Volume{{Name: "logs", Path: filepath.Dir(path)}}
	return startExporterWith(t, &cfg)
}

// startExporterWith runs the exporter in-process with cfg, reading its
// sources from the beginning.
func startExporterWith(t *testing.T, cfg *exporter.Config) (url string, reg prometheus.Gatherer) {
	t.Helper()
	cfg.Logs.Start = "beginning"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- exporter.Run(ctx, exporter.Options{Config: cfg, StateDir: t.TempDir(), TelemetryPath: "/metrics",
			Listeners: []net.Listener{l}, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("exporter: %v", err)
		}
	})
	url = "http://" + l.Addr().String()
	return url, promtest.Exposition{URL: url + "/metrics"}
}

// parsedLines is usage_exporter_log_lines_total{result="parsed"}.
func parsedLines(t *testing.T, reg prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "usage_exporter_log_lines_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == "parsed" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getJSON decodes the body of url into v and returns when the report it
// shows was generated (to the second).
func getJSON(t *testing.T, url string, v any) time.Time {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	at, err := time.Parse(time.RFC3339, resp.Header.Get("X-Usage-Generated-At"))
	if err != nil {
		t.Fatalf("GET %s: X-Usage-Generated-At: %v", url, err)
	}
	return at
}

// The exporter source reads windows of log time from the exporter's
// rollups: exact, and days narrows them. Two blocks: one three days before
// the other; a window of one day holds the second only.
func TestExporterSourceExact(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "gateway.log")
	now := time.Now()
	// Each block spans two seconds from the start of a minute: one UTC day.
	old := appendLines(t, log, 1000, now.Add(-73*time.Hour).Truncate(time.Minute))
	// The newer block in this minute: in the current billing period, even in
	// the first hour of a month (its quota series are then served).
	tr := appendLines(t, log, 2000, now.Truncate(time.Minute))
	url, reg := startExporter(t, log)
	eventually(t, "3000 parsed lines", 30*time.Second, func() bool { return parsedLines(t, reg) == 3000 })

	// The quota of the current billing period counts the lines dated in it
	// (in the first hour of a month, neither block is).
	period := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	var wantUsed float64
	for _, block := range []traffic{old, tr} {
		if !block.first.Before(period) {
			wantUsed += block.total()
		}
	}
	src := &ExporterSource{URL: url + "/metrics"}
	var s *Snapshot
	// The exporter publishes the rollups and quota use with each checkpoint.
	eventually(t, "the window and the quota use of all lines", 10*time.Second, func() bool {
		var err error
		if s, err = src.Snapshot(context.Background(), 1, now); err != nil {
			t.Fatal(err)
		}
		var used float64
		for _, q := range s.Quotas {
			used += q.Calls
		}
		return used == wantUsed && s.TotalCalls() == 2000
	})
	if s.SinceStart || s.Window != tr.last.Sub(tr.first) || !s.End.After(tr.last) || s.Start.After(tr.first) {
		t.Errorf("since start %v, window %s to %s (%s; want %s)", s.SinceStart, s.Start, s.End, s.Window, tr.last.Sub(tr.first))
	}
	checkBlock := func(s *Snapshot, tr traffic, what string) {
		t.Helper()
		for svc, n := range tr.calls {
			if sv := s.Services[svc]; sv == nil || sv.Calls != n || sv.Errors != tr.errors[svc] {
				t.Errorf("%s: %s: %+v, want %v calls, %v errors", what, svc, sv, n, tr.errors[svc])
			}
		}
		if math.Abs(s.TotalCost()-tr.cost) > 1e-9 {
			t.Errorf("%s: cost %.9f, want %.9f", what, s.TotalCost(), tr.cost)
		}
		m := s.Models["gpt-4"]
		if m == nil || m.Calls != tr.gpt4Calls || m.Tokens["input"] != tr.gpt4Input || m.Tokens["output"] != tr.gpt4Output ||
			m.PromptTokens[math.Inf(1)] != tr.gpt4Calls || m.PromptTokens[1999] != 0 || s.Unpriced["no_model"] != tr.unpriced {
			t.Errorf("%s: gpt-4 %+v", what, m)
		}
		for user, n := range tr.users {
			if u := s.Users[user]; u == nil || u.Calls != n || u.Tier != tr.userTier[user] {
				t.Errorf("%s: user %s: %+v, want %v calls", what, user, u, n)
			}
		}
		var hourly float64
		for _, n := range s.Hourly {
			hourly += n
		}
		if hourly != tr.total() {
			t.Errorf("%s: hourly profile sums to %v, want %v", what, hourly, tr.total())
		}
	}
	checkBlock(s, tr, "one day")
	if len(s.Daily) != 1 || s.Daily[0].Calls != 2000 || math.Abs(s.Daily[0].Cost-tr.cost) > 1e-9 {
		t.Errorf("daily %+v", s.Daily)
	}
	both := old
	both.merge(tr)
	week, err := src.Snapshot(context.Background(), 7, now)
	if err != nil {
		t.Fatal(err)
	}
	checkBlock(week, both, "seven days")
	if len(week.Daily) != 2 {
		t.Errorf("daily of seven days %+v", week.Daily)
	}
	for _, q := range s.Quotas {
		if q.PeriodEnd.Sub(q.PeriodStart) < 28*24*time.Hour {
			t.Errorf("quota %+v: not a month", q)
		}
	}
	// Durations are 50, 150, ... 950 ms, evenly: the sketch's median is
	// within 4.4% of 450 or 550 ms (the observations of ranks 1000 and
	// 1001 of 2000).
	if p := s.Latency.P50; !(p > 0.45*0.956 && p < 0.55*1.045) || math.Abs(s.Latency.Avg-0.5) > 1e-9 {
		t.Errorf("latency %+v", s.Latency)
	}

	// Every exporter series the two sources read is one the exporter serves.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, mf := range mfs {
		served[mf.GetName()] = true
	}
	rq := &recordingQuerier{}
	if _, err := (&PrometheusSource{Q: rq}).Snapshot(context.Background(), 7, time.Now()); err != nil {
		t.Fatal(err)
	}
	code, _ := os.ReadFile("exporter_source.go")
	names := metricName.FindAllString(strings.Join(rq.queries, "\n")+string(code), -1)
	if len(names) < 15 {
		t.Fatalf("only %d metric names found in the queries", len(names))
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !served[name] && !served[base] {
			t.Errorf("the optimizer reads %s, which the exporter does not serve", name)
		}
	}

	// Served by the API, saying where the figures come from.
	e := NewEngine(src, NewMemoryCache(), mustSettings(t))
	var o Overview
	rec := get(t, &API{Engine: e}, APIPrefix+"overview?days=30")
	if err := json.Unmarshal(rec.Body.Bytes(), &o); err != nil {
		t.Fatal(err)
	}
	if o.TotalAPICalls != 3000 || math.Abs(o.TotalCost-money(both.cost)) > 1e-9 || o.Meta.SinceExporterStart ||
		!strings.HasPrefix(o.Meta.Source, "exporter ") {
		t.Errorf("overview %+v meta %+v", o, o.Meta)
	}
	// Storage: the log directory holds the log alone, priced at $0.023 a GB-month.
	fi, _ := os.Stat(log)
	var c Costs
	json.Unmarshal(get(t, &API{Engine: e}, APIPrefix+"costs?days=30").Body.Bytes(), &c)
	if v := c.StorageByVolume["logs"]; v.Bytes != float64(fi.Size()) || c.CostBreakdown["storage"] != c.StorageCost ||
		c.StorageMonthlyCost != money(float64(fi.Size())*0.023/1e9) {
		t.Errorf("storage: %+v monthly %v breakdown %v (log %d bytes)", c.StorageByVolume, c.StorageMonthlyCost, c.CostBreakdown, fi.Size())
	}
}

func mustSettings(t testing.TB) *Settings {
	t.Helper()
	cfg := DefaultConfig()
	s, err := NewSettings(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A real Prometheus scrapes a real exporter and the optimizer; the
// optimizer's JSON, read through Prometheus, matches what was ingested,
// exactly: the exporter's counters start at zero and are never reset, so a
// window's figure is the counters at its end minus at its start, with no
// extrapolation. The lines read before Prometheus' first scrape count too
// (their series begin at zero before the window).
func TestPrometheusSourceIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts prometheus")
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "gateway.log")
	const n = 1000
	// A first block of lines before Prometheus looks, a second after.
	first := appendLines(t, logPath, n, time.Now())
	expURL, reg := startExporter(t, logPath)
	eventually(t, "warm-up parsed", 30*time.Second, func() bool { return parsedLines(t, reg) == n })

	optL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.Start(t, time.Second, strings.TrimPrefix(expURL, "http://"), optL.Addr().String())
	cfg := DefaultConfig()
	// $10 an hour of shared infrastructure, split between the two organisations.
	cfg.Costs.InfrastructureHourly, cfg.Costs.SplitAcrossOrgs = 10, true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: &cfg, PrometheusURL: prom.URL, PrometheusTimeout: 20 * time.Second,
			Days: 1, Interval: 2 * time.Second, CacheTTL: time.Second, MaxStale: time.Minute,
			Listeners: []net.Listener{optL}, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("optimizer: %v", err)
		}
	})
	scrapes := func() int {
		res, err := prom.Query(`count_over_time(up{job="test"}[1h])`)
		if err != nil || len(res) == 0 {
			return 0
		}
		var v int
		fmt.Sscan(res[0].Value[1].(string), &v)
		return v
	}
	eventually(t, "scrapes of the first block", time.Minute, func() bool { return scrapes() >= 6 })

	// The window ends when the analysis runs, wherever the clock hour falls;
	// the profile puts each block in the hour Prometheus first saw it.
	appended := time.Now().UTC()
	tr := appendLines(t, logPath, n, time.Now())
	eventually(t, "second block parsed", 30*time.Second, func() bool { return parsedLines(t, reg) == 2*n })
	eventually(t, "the second block scraped", time.Minute, func() bool {
		res, err := prom.Query(`sum(usage_requests_total)`)
		return err == nil && len(res) == 1 && res[0].Value[1] == fmt.Sprint(2*n)
	})
	scraped := time.Now().UTC()
	// A report computed after the last block was scraped.
	base := "http://" + optL.Addr().String() + APIPrefix
	var o Overview
	eventually(t, "a report of both blocks", time.Minute, func() bool {
		getJSON(t, base+"overview?days=1", &o)
		return o.TotalAPICalls == 2*tr.total()
	})
	var users []UserRow
	var perf Performance
	var quotas map[string]TierQuota
	var p Patterns
	getJSON(t, base+"by-user?days=1&limit=10", &users)
	getJSON(t, base+"performance?days=1", &perf)
	getJSON(t, base+"quotas", &quotas)
	getJSON(t, base+"patterns?days=1", &p)
	both := first.total() + tr.total()
	if o.TotalAPICalls != both || math.Abs(o.TotalCost-money(first.cost+tr.cost)) > 1e-9 {
		t.Errorf("overview: %v calls, $%v; want %v, $%.4f", o.TotalAPICalls, o.TotalCost, both, first.cost+tr.cost)
	}
	for svc, c := range tr.calls {
		if got := o.ByService[svc].Calls; got != c+first.calls[svc] {
			t.Errorf("%s calls %v, want %v", svc, got, c+first.calls[svc])
		}
	}
	if o.Meta.SinceExporterStart || !strings.HasPrefix(o.Meta.Source, "prometheus ") || o.ByUserCount != 3 {
		t.Errorf("meta %+v, %d users", o.Meta, o.ByUserCount)
	}
	if len(users) != 3 {
		t.Fatalf("by-user %+v", users)
	}
	for _, u := range users {
		if u.TotalCalls != tr.users[u.UserID]+first.users[u.UserID] {
			t.Errorf("%s calls %v, want %v", u.UserID, u.TotalCalls, tr.users[u.UserID]+first.users[u.UserID])
		}
		if u.SubscriptionTier != tr.userTier[u.UserID] {
			t.Errorf("%s tier %s", u.UserID, u.SubscriptionTier)
		}
	}
	wantErr := (tr.errors["embeddings"] + tr.errors["search"]) / tr.total() * 100
	if perf.P50LatencyMs == nil || perf.P95LatencyMs == nil || math.Abs(perf.ErrorRate-wantErr) > 0.1 {
		t.Errorf("performance %+v, want error rate %.1f", perf, wantErr)
	}
	// Quotas are gauges read at now: exact, warm-up included.
	for user, tier := range tr.userTier {
		if quotas[tier].Used != 2*tr.users[user] || quotas[tier].Users != 1 {
			t.Errorf("quota of %s: %+v, want %v calls", tier, quotas[tier], 2*tr.users[user])
		}
	}
	// The profile reads differences of the sum: exact, in the hours of the
	// first scrape and of the second block (the same hour, but near its end).
	var profiled float64
	for _, h := range p.PeakHours {
		if h.Hour != appended.Add(-2*time.Minute).Hour() && h.Hour != appended.Hour() && h.Hour != scraped.Hour() {
			t.Errorf("calls in hour %d, not around %s", h.Hour, appended)
		}
		profiled += h.Calls
	}
	if profiled != both {
		t.Errorf("peak hours %+v: %v calls, want %v", p.PeakHours, profiled, both)
	}
	// By organisation, from usage_org_*; each takes half of a day of $10 an hour.
	var c Costs
	getJSON(t, base+"costs?days=1", &c)
	for _, org := range []string{"acme", "globex"} {
		got, calls, cost := c.CostByOrg[org], first.orgCalls[org]+tr.orgCalls[org], money(first.orgCost[org]+tr.orgCost[org])
		if got.Calls != calls || math.Abs(got.Cost-cost) > 1e-9 || got.SharedInfrastructureCost != 120 ||
			math.Abs(got.TotalCost-money(cost+120)) > 1e-9 {
			t.Errorf("%s: %+v, want %v calls, $%v and $120 shared", org, got, calls, cost)
		}
	}
	var opt Optimization
	getJSON(t, base+"optimization?days=1", &opt)
	if len(find(Result{Recommendations: recs(opt)}, TypeModelSwitch)) != 1 {
		t.Errorf("no model_switch away from gpt-4: %+v", opt)
	}
	// The recommendations reach Prometheus as info series.
	res := prom.WaitFor(t, `usage_recommendation_info{type="model_switch",current="gpt-4"}`, time.Minute)
	if res[0].Metric["id"] == "" || res[0].Metric["priority"] == "" {
		t.Errorf("info series %+v", res[0].Metric)
	}
	prom.WaitFor(t, `usage_optimizer_source_up == 1`, 30*time.Second)
	if d, err := prom.Query(`max_over_time(usage_optimizer_run_duration_seconds[5m])`); err == nil && len(d) == 1 {
		t.Logf("slowest analysis through Prometheus: %v s", d[0].Value[1])
	}
	prom.WaitFor(t, `usage_hourly_requests > 0`, 30*time.Second)
}

var metricName = regexp.MustCompile(`\b(usage_[a-z_]+|process_start_time_seconds)\b`)

// recordingQuerier answers every query with nothing and keeps the queries.
type recordingQuerier struct {
	mu      sync.Mutex
	queries []string
}

func (r *recordingQuerier) Query(_ context.Context, q string, _ time.Time) (model.Vector, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, q)
	return nil, nil
}

func (r *recordingQuerier) QueryRange(_ context.Context, q string, _, _ time.Time, _ time.Duration) (model.Matrix, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, q)
	return nil, nil
}

func recs(o Optimization) []Recommendation {
	out := make([]Recommendation, len(o.Recommendations))
	for i, r := range o.Recommendations {
		out[i] = r.Recommendation
	}
	return out
}
