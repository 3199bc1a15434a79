package exporter

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeLiteLLM serves whatever exposition the test sets, or fails as told.
type fakeLiteLLM struct {
	mu     sync.Mutex
	body   []byte
	status int
	delay  time.Duration
	hits   int
}

func (f *fakeLiteLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	body, status, delay := f.body, f.status, f.delay
	f.hits++
	f.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	if status != 0 {
		http.Error(w, "upstream trouble", status)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write(body)
}

func (f *fakeLiteLLM) set(body []byte, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.body, f.status, f.hits = body, status, 0
}

func (f *fakeLiteLLM) scrapes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

func litellmFixture(t *testing.T) []byte {
	data, err := os.ReadFile("litellm/testdata/litellm-v1.101.prom")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var sampleValue = regexp.MustCompile(`(?m)^(litellm_[a-z_]+_total\{[^}]*\}) ([0-9.e+]+)$`)

// restarted is the fixture as LiteLLM would show it after a restart: a new
// start time and every counter at a tenth, rounded.
func restarted(data []byte) []byte {
	out := bytes.Replace(data, []byte("process_start_time_seconds 1.79022952141e+09"), []byte("process_start_time_seconds 1.7903e+09"), 1)
	return sampleValue.ReplaceAllFunc(out, func(line []byte) []byte {
		m := sampleValue.FindSubmatch(line)
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		return []byte(fmt.Sprintf("%s %g", m[1], math.Round(v/10)))
	})
}

func gaugeValue(t *testing.T, reg prometheus.Gatherer, name string) (float64, bool) {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			if m.Gauge != nil {
				return m.Gauge.GetValue(), true
			}
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

// byModel sums a family by model over the series filter accepts.
func byModel(t *testing.T, reg prometheus.Gatherer, name string, filter func(map[string]string) bool) map[string]float64 {
	const skip = "\x00"
	out := sumCounter(t, reg, name, func(l map[string]string) string {
		if filter != nil && !filter(l) {
			return skip
		}
		return l["model"]
	})
	delete(out, skip)
	return out
}

// TestLiteLLMThroughRun: the fixture's spend, tokens and requests become the
// contract's series exactly; a LiteLLM restart keeps them counting up; a
// repeated scrape adds nothing; an exporter restart resumes from the
// checkpointed counters; a failing LiteLLM sets up to 0 and nothing else.
func TestLiteLLMThroughRun(t *testing.T) {
	fixture := litellmFixture(t)
	fake := &fakeLiteLLM{body: fixture}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	os.WriteFile(logPath, nil, 0o644)
	cfg := fastConfig(logPath)
	cfg.LiteLLM.URL = srv.URL
	cfg.LiteLLM.Interval = 100 * time.Millisecond
	cfg.LiteLLM.Timeout = 90 * time.Millisecond
	stateDir := filepath.Join(dir, "state")
	inst := startInstance(t, cfg, stateDir, "")

	llm := func(l map[string]string) bool { return l["api_service"] == "llm" }
	// New series show at zero until a scrape (here a gather) has seen them.
	published := func(reg prometheus.Gatherer) bool {
		spend := byModel(t, reg, "usage_cost_dollars_total", llm)
		return len(spend) >= 5 && spend["claude-3-haiku"] > 0
	}
	waitFor(t, "LiteLLM spend", func() bool { return published(inst.reg) })
	want := map[string]struct{ spend, in, out, ok, failed float64 }{
		"claude-3-5-sonnet": {16.176486, 3017787, 474875, 742, 1},
		"claude-3-haiku":    {0.371757, 1146930, 68020, 540, 0},
		"gpt-4o":            {13.507943, 2846165, 639253, 2150, 12},
		"gpt-4o-mini":       {2.193296, 9825653, 1433236, 7966, 9},
		"llama-3-70b":       {7.686497, 1733937, 883304, 2312, 18},
	}
	check := func(factor float64, extra map[string]float64) {
		t.Helper()
		spend := byModel(t, inst.reg, "usage_cost_dollars_total", llm)
		in := byModel(t, inst.reg, "usage_llm_tokens_total", func(l map[string]string) bool { return l["direction"] == "input" })
		out := byModel(t, inst.reg, "usage_llm_tokens_total", func(l map[string]string) bool { return l["direction"] == "output" })
		ok := byModel(t, inst.reg, "usage_llm_requests_total", func(l map[string]string) bool { return l["status"] == "success" })
		failed := byModel(t, inst.reg, "usage_llm_requests_total", func(l map[string]string) bool { return l["status"] == "failure" })
		for model, w := range want {
			if math.Abs(spend[model]-factor*w.spend-extra[model]) > 1e-6 || in[model] != factor*w.in+extra[model+"/in"] ||
				out[model] != factor*w.out+extra[model+"/out"] || ok[model] != factor*w.ok+extra[model+"/ok"] ||
				failed[model] != factor*w.failed+extra[model+"/failed"] {
				t.Errorf("%s: spend %v in %v out %v ok %v failed %v; want x%v of %+v plus %v",
					model, spend[model], in[model], out[model], ok[model], failed[model], factor, w, extra)
			}
		}
	}
	check(1, nil)
	// Every spend series of the capture carries org_id: the organisation has it all.
	orgs := sumCounter(t, inst.reg, "usage_org_cost_dollars_total", func(l map[string]string) string { return l["org"] + "/" + l["api_service"] })
	if len(orgs) != 1 || math.Abs(orgs["8d1f6b0e-3c2a-4f7e-9a51-2b7c4e9d0a13/llm"]-39.935979) > 1e-6 {
		t.Errorf("spend by organisation %v, want 39.935979 for 8d1f6b0e-... on llm", orgs)
	}
	if up, _ := gaugeValue(t, inst.reg, "usage_exporter_litellm_up"); up != 1 {
		t.Errorf("litellm_up %v", up)
	}
	// Per end user, with the anonymous requests apart.
	users := sumCounter(t, inst.reg, "usage_user_cost_dollars_total", func(l map[string]string) string { return l["user"] })
	if users["cust_1042"] <= 0 || users[anonymousLabel] <= 0 || users["None"] != 0 {
		t.Errorf("per-user spend %v", users)
	}
	if v := gauges(t, inst.reg, "usage_llm_budget_max_dollars")["team/support-bots"]; v != 2500 {
		t.Errorf("support-bots budget %v, want 2500", v)
	}
	if v := gauges(t, inst.reg, "usage_llm_request_duration_seconds_count")["gpt-4o-mini"]; v != 7966 {
		t.Errorf("gpt-4o-mini latency count %v, want 7966", v)
	}

	// The same exposition again and again: nothing more.
	fake.set(fixture, 0)
	waitFor(t, "repeat scrapes", func() bool { return fake.scrapes() >= 3 })
	check(1, nil)

	// LiteLLM restarts: its counters start again; ours keep counting up.
	fake.set(restarted(fixture), 0)
	waitFor(t, "restart seen", func() bool {
		v, _ := gaugeValue(t, inst.reg, "usage_exporter_litellm_restarts_total")
		return v == 1
	})
	waitFor(t, "post-restart scrapes", func() bool { return fake.scrapes() >= 2 })
	spendAfter := byModel(t, inst.reg, "usage_cost_dollars_total", llm)
	if spendAfter["gpt-4o"] <= 13.5 {
		t.Errorf("gpt-4o spend after a LiteLLM restart %v: must not go down", spendAfter["gpt-4o"])
	}

	// LiteLLM hangs: /metrics still answers at once.
	fake.mu.Lock()
	fake.delay = 5 * time.Second
	fake.mu.Unlock()
	waitFor(t, "up 0 on timeout", func() bool { v, _ := gaugeValue(t, inst.reg, "usage_exporter_litellm_up"); return v == 0 })
	start := time.Now()
	if resp, err := (&http.Client{Timeout: time.Second}).Get(inst.url + "/metrics"); err != nil {
		t.Fatalf("/metrics while LiteLLM hangs: %v", err)
	} else {
		resp.Body.Close()
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("/metrics took %s while LiteLLM hung", d)
	}
	fake.mu.Lock()
	fake.delay = 0
	fake.mu.Unlock()

	// LiteLLM fails: up 0, the counters stay, the re-exported state goes.
	before := byModel(t, inst.reg, "usage_cost_dollars_total", llm)
	fake.set(nil, http.StatusInternalServerError)
	waitFor(t, "up 0", func() bool { v, _ := gaugeValue(t, inst.reg, "usage_exporter_litellm_up"); return v == 0 })
	if _, ok := gaugeValue(t, inst.reg, "usage_llm_budget_max_dollars"); ok {
		t.Error("stale LiteLLM budgets still served while LiteLLM is down")
	}
	if after := byModel(t, inst.reg, "usage_cost_dollars_total", llm); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("spend changed while LiteLLM was down: %v -> %v", before, after)
	}

	// The exporter restarts while LiteLLM serves what it last saw: nothing is
	// counted again, since the applied counters were checkpointed, and the
	// counters go on from where they were.
	fake.set(restarted(fixture), 0)
	waitFor(t, "recovered", func() bool { v, _ := gaugeValue(t, inst.reg, "usage_exporter_litellm_up"); return v == 1 })
	// LiteLLM serves the same counters from now on: once a checkpoint after
	// the recovery is published, nothing changes any more.
	seen := fake.scrapes()
	waitFor(t, "a scrape after the recovery", func() bool { return fake.scrapes() > seen })
	cpAt, _ := gaugeValue(t, inst.reg, "usage_exporter_checkpoint_last_success_timestamp_seconds")
	waitFor(t, "a checkpoint after it", func() bool {
		v, _ := gaugeValue(t, inst.reg, "usage_exporter_checkpoint_last_success_timestamp_seconds")
		return v > cpAt
	})
	final := byModel(t, inst.reg, "usage_cost_dollars_total", llm)
	if err := inst.stop(); err != nil {
		t.Fatal(err)
	}
	inst2 := startInstance(t, cfg, stateDir, "")
	waitFor(t, "second exporter scraped", func() bool { return fake.scrapes() >= 3 })
	waitFor(t, "a checkpoint of the second exporter", func() bool {
		v, _ := gaugeValue(t, inst2.reg, "usage_exporter_checkpoint_last_success_timestamp_seconds")
		return v > 0
	})
	if again := byModel(t, inst2.reg, "usage_cost_dollars_total", llm); fmt.Sprint(again) != fmt.Sprint(final) {
		t.Errorf("spend after an exporter restart %v, want it as it was before: %v", again, final)
	}
}

func TestLiteLLMUpRegisteredOnlyWhenConfigured(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "a.log")
	os.WriteFile(logPath, nil, 0o644)
	inst := startInstance(t, fastConfig(logPath), filepath.Join(dir, "state"), "")
	if _, ok := gaugeValue(t, inst.reg, "usage_exporter_litellm_up"); ok {
		t.Error("usage_exporter_litellm_up exported without LiteLLM configured")
	}
	if !strings.Contains(fmt.Sprint(gaugeValue(t, inst.reg, "usage_price_table_last_load_successful")), "1") {
		t.Error("price table load not reported")
	}
}

// gauges reads a family's values keyed by model, or scope/name for budgets;
// histograms give their sample count under name_count.
func gauges(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := labelMap(m)
			key := l["model"]
			if l["scope"] != "" {
				key = l["scope"] + "/" + l["name"]
			}
			switch {
			case mf.GetName() == name && m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case mf.GetName()+"_count" == name && m.Histogram != nil:
				out[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}
