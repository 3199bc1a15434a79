package demo_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/usage-exporter/usage-exporter/exporter"
	"github.com/usage-exporter/usage-exporter/internal/demo"
	"github.com/usage-exporter/usage-exporter/internal/promtest"
	"github.com/usage-exporter/usage-exporter/optimizer"
)

var testStart = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// The LiteLLM /metrics reports exactly the successful model calls of the
// gateway log: per model and user, the calls and the tokens.
func TestLiteLLMAgreesWithTheLog(t *testing.T) {
	dir := t.TempDir()
	d, err := demo.New(dir, 40, 3, testStart)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(5000, testStart, testStart.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	type agg struct{ calls, input, output float64 }
	logged := map[string]*agg{}
	f, err := os.Open(filepath.Join(dir, demo.GatewayLog))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines++
		var l struct {
			User, Service, Model string
			UserID               string  `json:"user_id"`
			Status               int     `json:"status"`
			In                   float64 `json:"input_tokens"`
			Out                  float64 `json:"output_tokens"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d: %v", lines, err)
		}
		if l.Service != "llm" || l.Status >= 400 {
			continue
		}
		k := l.Model + "/" + l.UserID
		if logged[k] == nil {
			logged[k] = &agg{}
		}
		logged[k].calls++
		logged[k].input += l.In
		logged[k].output += l.Out
	}
	nginx, _ := os.ReadFile(filepath.Join(dir, demo.NginxLog))
	if n := int64(lines + bytes.Count(nginx, []byte("\n"))); n != 5000 || d.Calls() != 5000 {
		t.Fatalf("%d lines, %d calls, want 5000", n, d.Calls())
	}
	var buf bytes.Buffer
	d.WriteMetrics(&buf)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("the LiteLLM exposition does not parse: %v", err)
	}
	reported := map[string]*agg{}
	for name, get := range map[string]func(*agg) *float64{
		"litellm_requests_metric_total":      func(a *agg) *float64 { return &a.calls },
		"litellm_input_tokens_metric_total":  func(a *agg) *float64 { return &a.input },
		"litellm_output_tokens_metric_total": func(a *agg) *float64 { return &a.output },
	} {
		for _, m := range fams[name].GetMetric() {
			var mdl, user string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "model":
					mdl = lp.GetValue()
				case "end_user":
					user = lp.GetValue()
				}
			}
			k := mdl + "/" + user
			if reported[k] == nil {
				reported[k] = &agg{}
			}
			*get(reported[k]) += m.GetCounter().GetValue()
		}
	}
	if len(logged) < 20 {
		t.Fatalf("only %d model/user pairs", len(logged))
	}
	for k, want := range logged {
		if got := reported[k]; got == nil || *got != *want {
			t.Errorf("%s: LiteLLM %+v, the log %+v", k, got, want)
		}
	}
	if len(reported) != len(logged) {
		t.Errorf("LiteLLM reports %d pairs, the log has %d", len(reported), len(logged))
	}
}

// The peak rate is in the afternoon, the quiet hours at night.
func TestRateFollowsTheDay(t *testing.T) {
	night, peak := demo.Rate(time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)), demo.Rate(time.Date(2026, 1, 1, 14, 0, 0, 0, time.UTC))
	if !(night < 0.3 && math.Abs(peak-1) < 1e-9) {
		t.Errorf("rate at 03:00 %.2f, at 14:00 %.2f", night, peak)
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

func fetch(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// sum adds the samples of a family in an exposition.
func sum(body, family string) float64 {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return 0
	}
	var s float64
	for _, m := range fams[family].GetMetric() {
		s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return s
}

// The wiring of `make demo`, in Go: demo traffic, the exporter with
// examples/demo/usage-exporter.yml and the demo's LiteLLM, a real
// Prometheus with the repository's prometheus.yml and rules, the optimizer
// reading it. Within a minute the exporter shows usage, cost and quota use,
// the optimizer at least one recommendation, and Prometheus every service.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts prometheus")
	}
	root := t.TempDir()
	logs := filepath.Join(root, "logs")
	now := time.Now()
	d, err := demo.New(logs, 60, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Backfill(30*time.Minute, 20, now); err != nil {
		t.Fatal(err)
	}
	lite := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { d.WriteMetrics(w) }))
	defer lite.Close()

	cfg, err := exporter.LoadConfig("../../examples/demo/usage-exporter.yml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Logs.Sources { // run from the directory that holds logs/
		cfg.Logs.Sources[i].Path = filepath.Join(root, cfg.Logs.Sources[i].Path)
	}
	cfg.Logs.Start = "beginning"
	cfg.LiteLLM.URL = lite.URL
	cfg.LiteLLM.Interval, cfg.LiteLLM.Timeout = time.Second, time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	expL, optL := listen(t), listen(t)
	promDir := t.TempDir()
	prom := promtest.StartConfig(t, promtest.RepositoryConfig(t, "../..", promDir, map[string]string{
		"usage-exporter": expL.Addr().String(), "usage-optimizer": optL.Addr().String(),
		"litellm": strings.TrimPrefix(lite.URL, "http://"),
	}), promDir)
	ocfg, err := optimizer.LoadConfig("../../examples/usage-optimizer.yml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := exporter.Run(ctx, exporter.Options{Config: cfg, StateDir: t.TempDir(), TelemetryPath: "/metrics",
			Listeners: []net.Listener{expL}, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Errorf("exporter: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := optimizer.Run(ctx, optimizer.Options{Config: ocfg, PrometheusURL: prom.URL, PrometheusTimeout: 20 * time.Second,
			Days: 1, Interval: 2 * time.Second, CacheTTL: time.Second, MaxStale: time.Minute,
			Listeners: []net.Listener{optL}, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Errorf("optimizer: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := d.Run(ctx.Done(), 20, 250*time.Millisecond, time.Now); err != nil {
			t.Errorf("demo: %v", err)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	deadline := time.Now().Add(time.Minute)
	var last string
	ok := func(what string, cond bool) bool {
		if !cond {
			last = what
		}
		return cond
	}
	for {
		exp, _ := fetch("http://" + expL.Addr().String() + "/metrics")
		var o struct {
			TotalAPICalls float64 `json:"total_api_calls"`
			TotalCost     float64 `json:"total_cost"`
		}
		var opt struct {
			Recommendations []json.RawMessage `json:"recommendations"`
		}
		var quotas map[string]struct {
			Used float64 `json:"used"`
		}
		base := "http://" + optL.Addr().String() + optimizer.APIPrefix
		if body, err := fetch(base + "overview?days=1"); err == nil {
			json.Unmarshal([]byte(body), &o)
		}
		if body, err := fetch(base + "optimization?days=1"); err == nil {
			json.Unmarshal([]byte(body), &opt)
		}
		if body, err := fetch(base + "quotas"); err == nil {
			json.Unmarshal([]byte(body), &quotas)
		}
		services, _ := prom.Query(`count by (api_service) (usage_requests_total)`)
		var names []string
		for _, s := range services {
			names = append(names, s.Metric["api_service"])
		}
		slices.Sort(names)
		if ok("exporter usage", sum(exp, "usage_requests_total") > 0) &&
			ok("exporter cost", sum(exp, "usage_cost_dollars_total") > 0) &&
			ok("exporter quota use", sum(exp, "usage_quota_used") > 0) &&
			ok("LiteLLM spend", sum(exp, "usage_llm_team_cost_dollars_total") > 0) &&
			ok(fmt.Sprintf("optimizer overview %+v", o), o.TotalAPICalls > 0 && o.TotalCost > 0) &&
			ok(fmt.Sprintf("optimizer quotas %+v", quotas), quotas["trial"].Used > 0) &&
			ok("a recommendation", len(opt.Recommendations) > 0) &&
			ok(fmt.Sprintf("every service in Prometheus: %v", names), slices.Equal(names, []string{"embeddings", "llm", "other", "search", "stt", "tts"})) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute, still missing: %s", last)
		}
		time.Sleep(time.Second)
	}
}
