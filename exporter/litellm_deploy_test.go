package exporter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// litellmProcess renders one LiteLLM process's exposition: its start time
// (0: none) and its spend and input tokens on one model group.
func litellmProcess(start, spend, tokens float64) []byte {
	var b strings.Builder
	if start != 0 {
		fmt.Fprintf(&b, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %v\n", start)
	}
	fmt.Fprintf(&b, `# TYPE litellm_spend_metric_total counter
litellm_spend_metric_total{end_user="cust_1",model="gpt-4o-2024-08-06",requested_model="gpt-4o"} %v
# TYPE litellm_input_tokens_metric_total counter
litellm_input_tokens_metric_total{end_user="cust_1",model="gpt-4o-2024-08-06",requested_model="gpt-4o"} %v
`, spend, tokens)
	return []byte(b.String())
}

// replicas answers each request with the next of its bodies in turn, as a
// Kubernetes Service spreads scrapes over its pods.
type replicas struct {
	mu     sync.Mutex
	bodies [][]byte
	hits   int
	host   string // the Host header of the last request
}

func (r *replicas) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	body := r.bodies[r.hits%len(r.bodies)]
	r.hits++
	r.host = req.Host
	r.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write(body)
}

func (r *replicas) set(bodies ...[]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies, r.hits = bodies, 0
}

func (r *replicas) scrapes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

func serveOn(t *testing.T, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func litellmConfig(t *testing.T, targets ...string) *Config {
	logPath := filepath.Join(t.TempDir(), "access.log")
	os.WriteFile(logPath, nil, 0o644)
	cfg := fastConfig(logPath)
	cfg.LiteLLM.Targets = targets
	cfg.LiteLLM.Interval = 100 * time.Millisecond
	cfg.LiteLLM.Timeout = 90 * time.Millisecond
	cfg.LiteLLM.RefreshInterval = time.Second
	return cfg
}

func llmSpend(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	return sumCounter(t, reg, "usage_cost_dollars_total", func(l map[string]string) string { return l["model"] })
}

// waitSpend waits until the exporter shows want dollars on gpt-4o, after a
// scrape has served the series (new series show at zero first).
func waitSpend(t *testing.T, reg prometheus.Gatherer, want float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("gpt-4o spend %v", want), func() bool { return math.Abs(llmSpend(t, reg)["gpt-4o"]-want) < 1e-9 })
}

// Two LiteLLM processes behind one URL answer in turn: each is counted from
// its own baseline, so the spend is what the two counted, however many
// scrapes alternate (the exporter used to take every switch for a restart).
func TestLiteLLMReplicasBehindOneURL(t *testing.T) {
	fake := &replicas{bodies: [][]byte{litellmProcess(1.7e9, 1.0, 100), litellmProcess(1.7e9+60, 2.0, 300)}}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	serveOn(t, l, fake)
	inst := startInstance(t, litellmConfig(t, "http://"+l.Addr().String()), t.TempDir(), "")
	waitFor(t, "ten scrapes", func() bool { return fake.scrapes() >= 10 })
	waitSpend(t, inst.reg, 3.0)
	// Both grow; a switch is no restart.
	fake.set(litellmProcess(1.7e9, 1.5, 150), litellmProcess(1.7e9+60, 2.25, 330))
	waitFor(t, "ten more scrapes", func() bool { return fake.scrapes() >= 10 })
	waitSpend(t, inst.reg, 3.75)
	if v, _ := gaugeValue(t, inst.reg, "usage_exporter_litellm_restarts_total"); v != 1 {
		t.Errorf("restarts_total %v: the second replica's first scrape is the only new process", v)
	}
	if v, _ := gaugeValue(t, inst.reg, "usage_exporter_litellm_processes"); v != 2 {
		t.Errorf("processes %v, want 2", v)
	}
	tokens := sumCounter(t, inst.reg, "usage_llm_tokens_total", func(l map[string]string) string { return l["model"] })
	if tokens["gpt-4o"] != 480 {
		t.Errorf("tokens %v, want 480", tokens)
	}
}

// Without a start time (LiteLLM in multiprocess mode), a counter that
// drops is a reset: what it counts after the drop is added.
func TestLiteLLMDropWithoutStartTimeIsAReset(t *testing.T) {
	fake := &replicas{bodies: [][]byte{litellmProcess(0, 5, 10)}}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	serveOn(t, l, fake)
	inst := startInstance(t, litellmConfig(t, "http://"+l.Addr().String()), t.TempDir(), "")
	waitSpend(t, inst.reg, 5)
	fake.set(litellmProcess(0, 3, 4))
	waitSpend(t, inst.reg, 8)
	waitFor(t, "a reset counted", func() bool {
		v, _ := gaugeValue(t, inst.reg, "usage_exporter_litellm_series_resets_total")
		return v == 2 // spend and tokens
	})
}

// testResolver answers dns+ lookups from a map the test changes.
type testResolver struct {
	mu    sync.Mutex
	hosts map[string][]string
}

func (r *testResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.hosts[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func (r *testResolver) set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts[host] = addrs
}

// listenPair listens on 127.0.0.1 and 127.0.0.2 at one port, as two pods
// behind a headless Service.
func listenPair(t *testing.T) (net.Listener, net.Listener, string) {
	for range 20 {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(a.Addr().String())
		b, err := net.Listen("tcp", "127.0.0.2:"+port)
		if err == nil {
			return a, b, port
		}
		a.Close()
	}
	t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, nil, ""
}

// A dns+ target scrapes every address of its name, each with its own up
// and its own baseline; an address DNS stops returning is withdrawn.
func TestLiteLLMDNSDiscovery(t *testing.T) {
	a, b, port := listenPair(t)
	podA := &replicas{bodies: [][]byte{litellmProcess(1.7e9, 1.0, 100)}}
	podB := &replicas{bodies: [][]byte{litellmProcess(1.7e9+5, 0.25, 40)}}
	serveOn(t, a, podA)
	serveOn(t, b, podB)
	dns := &testResolver{hosts: map[string][]string{"litellm.test": {"127.0.0.2", "127.0.0.1"}}}
	target := "dns+http://litellm.test:" + port
	inst := startInstance(t, litellmConfig(t, target), t.TempDir(), "", func(o *Options) { o.Resolver = dns })
	waitSpend(t, inst.reg, 1.25)
	ups := func() map[string]float64 {
		return sumCounter(t, inst.reg, "usage_exporter_litellm_up", func(l map[string]string) string {
			return l["target"] + " " + l["endpoint"]
		})
	}
	epA, epB := "http://127.0.0.1:"+port+"/metrics", "http://127.0.0.2:"+port+"/metrics"
	want := fmt.Sprint(map[string]float64{target + " " + epA: 1, target + " " + epB: 1})
	waitFor(t, "both endpoints up", func() bool { return fmt.Sprint(ups()) == want })
	if podA.host != "litellm.test:"+port {
		t.Errorf("Host header %q: the name, not the address", podA.host)
	}
	// Pod B goes away; pod A grows.
	dns.set("litellm.test", "127.0.0.1")
	podA.set(litellmProcess(1.7e9, 1.5, 150))
	waitSpend(t, inst.reg, 1.75)
	waitFor(t, "pod B withdrawn", func() bool { return fmt.Sprint(ups()) == fmt.Sprint(map[string]float64{target + " " + epA: 1}) })
	if v := sumCounter(t, inst.reg, "usage_exporter_litellm_endpoints", func(l map[string]string) string { return l["target"] }); v[target] != 1 {
		t.Errorf("endpoints %v", v)
	}
	// DNS fails: the endpoints it had are kept.
	dns.set("other", "x")
	dns.mu.Lock()
	delete(dns.hosts, "litellm.test")
	dns.mu.Unlock()
	waitFor(t, "a failed lookup", func() bool {
		v := sumCounter(t, inst.reg, "usage_exporter_litellm_discovery_failures_total", func(l map[string]string) string { return l["target"] })
		return v[target] >= 1
	})
	if v := ups(); v[target+" "+epA] != 1 {
		t.Errorf("after a failed lookup: %v", v)
	}
}

// LiteLLM 1.83's label sets through the pipeline: cost, tokens (disjoint
// buckets) and requests under the model groups, and LiteLLM's own /metrics
// scrapes, which it counts as failed requests, not counted.
func TestLiteLLM183ThroughRun(t *testing.T) {
	data, err := os.ReadFile("litellm/testdata/captures/v1.83-scenario.prom")
	if err != nil {
		t.Fatal(err)
	}
	fake := &metricsHits{body: string(data)}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	serveOn(t, l, fake)
	inst := startInstance(t, litellmConfig(t, "http://"+l.Addr().String()), t.TempDir(), "")
	waitFor(t, "spend", func() bool {
		s := llmSpend(t, inst.reg)
		return math.Abs(s["gpt-4o"]-0.055) < 1e-12 && math.Abs(s["smart"]-0.015) < 1e-12 && math.Abs(s["embed"]-1e-5) < 1e-15
	})
	waitFor(t, "five more LiteLLM scrapes, each counting itself as a failure", func() bool { return fake.scrapes() >= 5 })
	tokens := sumCounter(t, inst.reg, "usage_llm_tokens_total", func(l map[string]string) string { return l["model"] + "/" + l["direction"] })
	for k, want := range map[string]float64{"gpt-4o/input": 9000, "gpt-4o/cache_read": 8000, "gpt-4o/output": 3000,
		"smart/input": 4000, "smart/output": 1500, "smart/reasoning": 500, "embed/input": 40} {
		if tokens[k] != want {
			t.Errorf("tokens %s %v, want %v", k, tokens[k], want)
		}
	}
	requests := sumCounter(t, inst.reg, "usage_llm_requests_total", func(l map[string]string) string { return l["model"] + "/" + l["status"] })
	maps.DeleteFunc(requests, func(_ string, v float64) bool { return v == 0 })
	want := fmt.Sprint(map[string]float64{"embed/success": 5, "gpt-4o/failure": 2, "gpt-4o/success": 42, "smart/success": 10})
	if got := fmt.Sprint(requests); got != want {
		t.Errorf("requests %s, want %s", got, want)
	}
}

// metricsHits serves an exposition in which, as in LiteLLM 1.72, every
// scrape of /metrics counts as a failed request.
type metricsHits struct {
	mu   sync.Mutex
	body string
	hits int
}

func (m *metricsHits) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	m.hits++
	n := m.hits
	m.mu.Unlock()
	body := strings.ReplaceAll(m.body, `route="/metrics",status_code="401",team="None",team_alias="None",user="default_user_id",user_email="None"} 17.0`,
		fmt.Sprintf(`route="/metrics",status_code="401",team="None",team_alias="None",user="default_user_id",user_email="None"} %d.0`, 17+n))
	body = strings.ReplaceAll(body, `route="/metrics",team="None",team_alias="None",user="default_user_id",user_email="None"} 17.0`,
		fmt.Sprintf(`route="/metrics",team="None",team_alias="None",user="default_user_id",user_email="None"} %d.0`, 17+n))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write([]byte(body))
}

func (m *metricsHits) scrapes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits
}
