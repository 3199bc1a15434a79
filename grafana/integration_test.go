package grafana

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter"
	"github.com/usage-exporter/usage-exporter/internal/promtest"
	"github.com/usage-exporter/usage-exporter/internal/redistest"
	"github.com/usage-exporter/usage-exporter/optimizer"
)

// gateway appends JSON lines of every service, dated now: alice (trial,
// 700 calls allowed) makes 800 calls in the first block, bob and carol a
// few; some calls fail, time out or repeat.
type gateway struct {
	mu   sync.Mutex
	path string
	n    int
}

func (g *gateway) write(t *testing.T, lines int) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	f, err := os.OpenFile(g.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	services := []string{"llm", "embeddings", "search", "tts", "stt"}
	users := []struct{ id, tier string }{{"alice@example.com", "trial"}, {"bob@example.com", "starter"}, {"carol@example.com", "professional"}}
	for range lines {
		i := g.n
		g.n++
		u := users[0]
		if i%5 == 3 {
			u = users[1]
		} else if i%5 == 4 {
			u = users[2]
		}
		svc := services[i%len(services)]
		status := 200
		switch i % 20 {
		case 7:
			status = 500
		case 11:
			status = 504
		case 13:
			status = 429
		}
		fmt.Fprintf(w, `{"timestamp":"%s","user_id":"%s","org_id":"org-%d","tier":"%s","method":"POST","path":"/api/v1/%s/op%d/%d","status":%d,"duration_ms":%d,"size":%d,"service":"%s","cache_key":"k%d"`,
			time.Now().UTC().Format(time.RFC3339Nano), u.id, i%2, u.tier, svc, i%3, 1000+i, status, 20+i%40*25, 500+i%9*300, svc, i%50)
		if svc == "llm" {
			fmt.Fprintf(w, `,"model":"gpt-4o","input_tokens":%d,"output_tokens":%d`, 300+i%7*400, 50+i%5*40)
		}
		w.WriteString("}\n")
	}
	if err := w.Flush(); err != nil {
		t.Error(err)
	}
}

// litellm serves the shared LiteLLM exposition with its counters (and
// histograms) multiplied by the number of scrapes so far: a LiteLLM whose
// spend, tokens and requests grow, in its real format.
func litellm(t *testing.T) *httptest.Server {
	data, err := os.ReadFile("../exporter/litellm/testdata/litellm-v1.101.prom")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	growing := regexp.MustCompile(`^(litellm_\w+(_total|_bucket|_sum|_count))(\{.*\})? (\S+)$`)
	var scrapes atomic.Int64
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := float64(scrapes.Add(1))
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for _, l := range lines {
			if m := growing.FindStringSubmatch(l); m != nil {
				if v, err := strconv.ParseFloat(m[4], 64); err == nil {
					l = m[1] + m[3] + " " + strconv.FormatFloat(v*n, 'g', -1, 64)
				}
			}
			io.WriteString(w, l+"\n")
		}
	}))
}

// logsPricedExporter runs an exporter that prices the logs itself (no
// LiteLLM, no Redis) on lines with an unknown model and a model call that
// names none, and returns its exposition: the families only that
// configuration has (unpriced calls).
func logsPricedExporter(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.log")
	now := time.Now().UTC().Format(time.RFC3339Nano)
	lines := fmt.Sprintf(`{"timestamp":"%s","user_id":"u1","method":"POST","path":"/api/v1/llm/chat","status":200,"duration_ms":120,"service":"llm","model":"no-such-model","input_tokens":10,"output_tokens":5}
{"timestamp":"%s","user_id":"u1","method":"POST","path":"/api/v1/llm/chat","status":200,"duration_ms":90,"service":"llm"}
`, now, now)
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := exporter.DefaultConfig()
	src := cfg.Logs.Sources[0]
	src.Path, src.Format = path, "json"
	cfg.Logs.Sources = []exporter.SourceConfig{src}
	cfg.Logs.Start = "beginning"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- exporter.Run(ctx, exporter.Options{Config: &cfg, StateDir: t.TempDir(), TelemetryPath: "/metrics",
			Listeners: []net.Listener{l}, Logger: slog.New(slog.DiscardHandler)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("exporter: %v", err)
		}
	}()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		body := get(t, "http://"+l.Addr().String()+"/metrics")
		if strings.Contains(body, `usage_exporter_unpriced_requests_total{model="",reason="no_model"}`) &&
			strings.Contains(body, `reason="unknown_model"`) {
			return body
		}
		if time.Now().After(end) {
			t.Fatalf("no unpriced calls counted:\n%s", body)
		}
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// families are the metric names of an exposition: # TYPE lines, with the
// series names of histograms and summaries.
func families(body string, into map[string]bool) {
	for _, l := range strings.Split(body, "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			into[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				into[f[2]+"_bucket"], into[f[2]+"_sum"], into[f[2]+"_count"] = true, true, true
			}
			if f[3] == "counter" && !strings.HasSuffix(f[2], "_total") {
				into[f[2]+"_total"] = true
			}
		}
	}
}

// A real Prometheus with the repository's prometheus.yml and rules scrapes
// a real exporter (gateway lines, a LiteLLM in its real format, a real
// Redis ledger) and the optimizer reading that Prometheus. Every metric
// the dashboards and rules name is one of theirs; every panel's query
// returns data, with the variables at All and at one real value; every
// recording rule has a value; an over-quota user fires its alert; and the
// optimizer says it read the recording rules.
func TestDashboardsAndRulesOnARealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts prometheus and redis")
	}
	dir := t.TempDir()
	rds := redistest.Start(t)
	lite := litellm(t)
	defer lite.Close()

	gw := &gateway{path: filepath.Join(dir, "gateway.log")}
	gw.write(t, 1000) // alice: 600 of these, then more below
	cfg := exporter.DefaultConfig()
	src := cfg.Logs.Sources[0]
	src.Path, src.Format = gw.path, "json"
	cfg.Logs.Sources = []exporter.SourceConfig{src}
	cfg.Logs.Start = "beginning"
	cfg.LiteLLM.URL = lite.URL
	cfg.LiteLLM.Interval, cfg.LiteLLM.Timeout = time.Second, time.Second
	cfg.Redis.URL = rds.URL()
	cfg.Redis.FlushInterval = 200 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	expL, optL := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := exporter.Run(ctx, exporter.Options{Config: &cfg, StateDir: t.TempDir(), TelemetryPath: "/metrics",
			Listeners: []net.Listener{expL}, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Errorf("exporter: %v", err)
		}
	}()

	promDir := t.TempDir()
	prom := promtest.StartConfig(t, promtest.RepositoryConfig(t, "..", promDir, map[string]string{
		"usage-exporter":  expL.Addr().String(),
		"usage-optimizer": optL.Addr().String(),
		"litellm":         strings.TrimPrefix(lite.URL, "http://"),
	}), promDir)
	ocfg := optimizer.DefaultConfig()
	go func() {
		defer wg.Done()
		if err := optimizer.Run(ctx, optimizer.Options{Config: &ocfg, PrometheusURL: prom.URL, PrometheusTimeout: 20 * time.Second,
			Days: 1, Interval: 2 * time.Second, CacheTTL: time.Second, MaxStale: time.Minute,
			Listeners: []net.Listener{optL}, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Errorf("optimizer: %v", err)
		}
	}()
	// Traffic goes on while the test looks: rates "now" have data.
	stop := make(chan struct{})
	traffic := make(chan struct{})
	go func() {
		defer close(traffic)
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				gw.write(t, 20)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-traffic
		cancel()
		wg.Wait()
	})

	// Every name the dashboards and rules read is served by the exporter,
	// the optimizer, LiteLLM or Prometheus itself, or recorded by a rule.
	prom.WaitFor(t, `usage_recommendation_info`, 2*time.Minute)
	prom.WaitFor(t, `usage_exporter_redis_up == 1`, 30*time.Second)
	prom.WaitFor(t, `usage_llm_team_cost_dollars_total`, 30*time.Second)
	served := map[string]bool{"up": true, "ALERTS": true}
	families(get(t, "http://"+expL.Addr().String()+"/metrics"), served)
	families(logsPricedExporter(t), served)
	families(get(t, "http://"+optL.Addr().String()+"/metrics"), served)
	families(get(t, lite.URL), served)
	rules := ruleExprs(t)
	for name := range rules {
		served[strings.Split(name, "#")[0]] = true
	}
	queries := committedQueries(t)
	var exprs []string
	for _, q := range queries {
		exprs = append(exprs, substitute(q.Expr, nil))
	}
	for _, e := range rules {
		exprs = append(exprs, e)
	}
	for _, e := range exprs {
		for _, name := range metricNames(t, e) {
			if !served[name] {
				t.Errorf("%s is read by %q but served by none", name, e)
			}
		}
	}

	// One real value of each variable.
	model := prom.WaitFor(t, `topk(1, sum by (model) (usage_llm_tokens_total))`, 30*time.Second)[0].Metric["model"]
	one := map[string]string{"api_service": "llm", "tier": "trial", "user": "alice@example.com", "model": model}

	// Every panel's query returns data, at All and at the real values.
	type pending struct{ what, expr string }
	var wait []pending
	for _, q := range queries {
		what := q.Board + " / " + q.Panel + " / " + q.Ref
		wait = append(wait, pending{what + " (All)", substitute(q.Expr, nil)}, pending{what + " (one)", substitute(q.Expr, one)})
	}
	for name := range rules {
		if name = strings.Split(name, "#")[0]; !strings.HasPrefix(name, "Usage") {
			wait = append(wait, pending{"recording rule " + name, name})
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for len(wait) > 0 && time.Now().Before(deadline) {
		var left []pending
		for _, p := range wait {
			if res, err := prom.Query(p.expr); err != nil {
				t.Fatalf("%s: %v\n%s", p.what, err, p.expr)
			} else if len(res) == 0 {
				left = append(left, p)
			}
		}
		wait = left
		if len(wait) > 0 {
			time.Sleep(time.Second)
		}
	}
	for _, p := range wait {
		t.Errorf("no data: %s\n  %s", p.what, p.expr)
	}

	// alice used more than trial's 700 calls: her alert fires.
	gw.write(t, 500)
	prom.WaitFor(t, `ALERTS{alertname="UsageQuotaExhausted", alertstate="firing", user="alice@example.com", resource="calls"}`, time.Minute)

	// The optimizer read the recorded sums (the raw counters began within
	// its window too, so the rules cover all of it).
	var meta struct {
		Meta struct {
			RecordingRules []string `json:"recording_rules"`
		} `json:"meta"`
	}
	for end := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		body := get(t, "http://"+optL.Addr().String()+"/api/v1/analytics/usage/overview?days=1")
		if err := json.Unmarshal([]byte(body), &meta); err == nil && len(meta.Meta.RecordingRules) == len(optimizer.RecordedSums) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the optimizer never read the recording rules: %s", body)
		}
	}
}
