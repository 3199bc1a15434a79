package exporter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/usage-exporter/usage-exporter/internal/promtest"
)

// instance is an exporter started in-process by a test.
type instance struct {
	reg  prometheus.Gatherer // what /metrics serves
	url  string
	stop func() error
}

func startInstance(t *testing.T, cfg *Config, stateDir string, configFile string, with ...func(*Options)) *instance {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	reload := make(chan struct{})
	opts := Options{
		Config: cfg, ConfigFile: configFile, StateDir: stateDir, TelemetryPath: "/metrics",
		Listeners: []net.Listener{l}, Logger: testLogger(), Reload: reload, Now: testNow,
	}
	for _, f := range with {
		f(&opts)
	}
	go func() { done <- Run(ctx, opts) }()
	inst := &instance{reg: promtest.Exposition{URL: "http://" + l.Addr().String() + "/metrics"}, url: "http://" + l.Addr().String()}
	stopped := false
	var result error
	inst.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { _ = inst.stop() })
	client := &http.Client{Timeout: time.Second}
	waitFor(t, "exporter ready", func() bool {
		select {
		case err := <-done:
			stopped, result = true, err
			t.Fatalf("Run returned before it was ready: %v", err)
		default:
		}
		resp, err := client.Get(inst.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return inst
}

// testNow is the clock of in-process exporters: mid-November 2025, the
// billing period of the tests' log lines.
func testNow() time.Time { return time.Date(2025, 11, 15, 12, 0, 0, 0, time.UTC) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sumCounter sums a counter's (or a gauge's) samples by a key built from labels.
func sumCounter(t *testing.T, reg prometheus.Gatherer, name string, key func(map[string]string) string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[key(labelMap(m))] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

func linesParsed(t *testing.T, reg prometheus.Gatherer) float64 {
	return sumCounter(t, reg, "usage_exporter_log_lines_total", func(l map[string]string) string { return l["result"] })["parsed"]
}

func fastConfig(sources ...string) *Config {
	cfg := DefaultConfig()
	cfg.Logs.Sources = nil
	for _, s := range sources {
		cfg.Logs.Sources = append(cfg.Logs.Sources, SourceConfig{Path: s})
	}
	cfg.Logs.PollInterval = 10 * time.Millisecond
	cfg.Logs.GlobInterval = 20 * time.Millisecond
	cfg.Logs.RotateWait = 200 * time.Millisecond
	cfg.Logs.CheckpointInterval = 100 * time.Millisecond
	return &cfg
}

// trafficGen writes gateway JSON lines and remembers what it wrote.
type trafficGen struct {
	rng      *rand.Rand
	expected map[string]float64 // api_service route code -> requests
	n        int
}

var trafficRoutes = []struct{ service, path, route string }{
	{"llm", "/api/v1/llm/chat/completions", "/api/v1/llm/chat/completions"},
	{"embeddings", "/api/v1/embeddings", "/api/v1/embeddings"},
	{"search", "/api/v1/search?q=%d", "/api/v1/search"},
	{"tts", "/api/v1/tts", "/api/v1/tts"},
	{"stt", "/api/v1/stt", "/api/v1/stt"},
	{"other", "/api/v1/users/%d/usage", "/api/v1/users/:id/usage"},
	{"other", "/api/v1/jobs/%d", "/api/v1/jobs/:id"},
}

var trafficCodes = []int{200, 200, 200, 200, 201, 400, 429, 500, 503}

func newTrafficGen(seed uint64) *trafficGen {
	return &trafficGen{rng: rand.New(rand.NewPCG(seed, seed)), expected: map[string]float64{}}
}

func (g *trafficGen) lines(n int) []byte {
	var buf bytes.Buffer
	for i := 0; i < n; i++ {
		r := trafficRoutes[g.rng.IntN(len(trafficRoutes))]
		code := trafficCodes[g.rng.IntN(len(trafficCodes))]
		path := r.path
		if strings.Contains(path, "%d") {
			path = fmt.Sprintf(path, 1000+g.rng.IntN(9000))
		}
		ts := time.Unix(1761264000+int64(g.n/100), 0).UTC().Format(time.RFC3339)
		fmt.Fprintf(&buf, `{"timestamp":"%s","user_id":"user_%03d","method":"POST","path":"%s","status":%d,"duration_ms":%d.5,"size":%d,"seq":%d}`+"\n",
			ts, g.rng.IntN(50), path, code, g.rng.IntN(3000), g.rng.IntN(10000), g.n)
		g.expected[r.service+" "+r.route+" "+fmt.Sprint(code)]++
		g.n++
	}
	return buf.Bytes()
}

type logFile struct {
	t    *testing.T
	path string
	f    *os.File
}

func openLog(t *testing.T, path string) *logFile {
	l := &logFile{t: t, path: path}
	l.reopen()
	t.Cleanup(func() { l.f.Close() })
	return l
}

func (l *logFile) reopen() {
	if l.f != nil {
		l.f.Close()
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	l.f = f
}

func (l *logFile) write(data []byte) {
	if _, err := l.f.Write(data); err != nil {
		l.t.Fatal(err)
	}
}

// copyTruncate does what logrotate's copytruncate does.
func (l *logFile) copyTruncate(to string) {
	data, err := os.ReadFile(l.path)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		l.t.Fatal(err)
	}
	if err := l.f.Truncate(0); err != nil {
		l.t.Fatal(err)
	}
}

// TestExactlyOnceAcrossRotationsAndRestart writes 200,000 lines while the
// file is rotated by rename three times and by copytruncate twice, and the
// exporter is stopped and restarted in the middle (with lines written while
// it is down). The counters of the second run (which go on from the first's,
// restored from the state file) hold exactly what was written,
// per api_service, route and status code.
func TestExactlyOnceAcrossRotationsAndRestart(t *testing.T) {
	for _, mode := range []string{"glob", "path"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			logPath := filepath.Join(dir, "access.log")
			source := logPath
			if mode == "glob" {
				source = logPath + "*" // rotated files are matched too, and must not be read twice
			}
			cfg := fastConfig(source)
			stateDir := filepath.Join(dir, "state")
			gen := newTrafficGen(42)
			log := openLog(t, logPath)
			key := func(l map[string]string) string { return l["api_service"] + " " + l["route"] + " " + l["code"] }

			runs := []*instance{startInstance(t, cfg, stateDir, "")}
			current := func() *instance { return runs[len(runs)-1] }
			parsed := func() float64 { return linesParsed(t, current().reg) }
			// In path mode a renamed file is found again only by identity, and
			// the new file only by discovery: a file must hold the name for a
			// discovery interval, as it does under logrotate.
			settle := func() {
				if mode == "path" {
					waitFor(t, "exporter caught up", func() bool { return parsed() == float64(gen.n) })
				}
			}
			renames, copies := 0, 0
			for step := 0; step < 40; step++ {
				log.write(gen.lines(5000))
				switch step {
				case 6, 18, 30:
					settle()
					renames++
					if err := os.Rename(logPath, fmt.Sprintf("%s.r%d", logPath, renames)); err != nil {
						t.Fatal(err)
					}
					log.write(gen.lines(700)) // the writer has not reopened yet
					log.reopen()
				case 12, 34:
					copies++
					log.copyTruncate(fmt.Sprintf("%s.c%d", logPath, copies))
				case 22:
					if err := current().stop(); err != nil {
						t.Fatal(err)
					}
					log.write(gen.lines(3000)) // written while the exporter is down
					runs = append(runs, startInstance(t, cfg, stateDir, ""))
				}
			}
			if gen.n < 200000 {
				t.Fatalf("wrote only %d lines", gen.n)
			}
			waitFor(t, "every line counted", func() bool { return parsed() >= float64(gen.n) })
			// A little longer: nothing more may arrive.
			time.Sleep(300 * time.Millisecond)
			got := sumCounter(t, current().reg, "usage_requests_total", key)
			for k, want := range gen.expected {
				if got[k] != want {
					t.Errorf("%s: counted %v, wrote %v", k, got[k], want)
				}
			}
			for k, v := range got {
				if _, ok := gen.expected[k]; !ok && v != 0 {
					t.Errorf("%s: counted %v, wrote none", k, v)
				}
			}
			if p := parsed(); p != float64(gen.n) {
				t.Errorf("parsed %v lines, wrote %d", p, gen.n)
			}
		})
	}
}

func TestHTTPEndpointsAndReload(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	if err := os.WriteFile(logPath, []byte(`{"path":"/api/v1/search","status":200,"user_id":"u1","duration_ms":12}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	configFile := filepath.Join(dir, "config.yml")
	writeConfig := func(s string) {
		if err := os.WriteFile(configFile, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("logs:\n  poll_interval: 10ms\n  sources:\n    - path: " + logPath + "\n")
	cfg, err := LoadConfig(configFile)
	if err != nil {
		t.Fatal(err)
	}
	inst := startInstance(t, cfg, filepath.Join(dir, "state"), configFile)
	waitFor(t, "line counted", func() bool { return linesParsed(t, inst.reg) == 1 })

	get := func(path string) (int, string) {
		resp, err := http.Get(inst.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	post := func(path string) (int, string) {
		resp, err := http.Post(inst.url+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `usage_requests_total{api_service="search",code="200",method="other",route="/api/v1/search"} 1`) ||
		!strings.Contains(body, "usage_exporter_build_info") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, "usage-exporter") {
		t.Errorf("landing page: %d", code)
	}
	if code, _ := get("/-/healthy"); code != 200 {
		t.Errorf("/-/healthy: %d", code)
	}
	if code, _ := get("/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", code)
	}

	// A bad configuration is refused; the running one goes on.
	writeConfig("logs:\n  sources:\n    - path: " + logPath + "\n      format: xml\n")
	if code, body := post("/-/reload"); code != http.StatusBadRequest || !strings.Contains(body, `line 4: logs.sources[0].format: must be one of json, nginx, not "xml"`) {
		t.Errorf("bad reload: %d %q", code, body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "usage_exporter_config_last_reload_successful 0") {
		t.Error("failed reload not reported")
	}
	appendLine := func(s string) {
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	appendLine(`{"path":"/api/v1/search","status":200,"user_id":"u1"}`)
	waitFor(t, "old config still ingesting", func() bool { return linesParsed(t, inst.reg) == 2 })

	// A good one applies, counters carry on, and nothing is read twice.
	writeConfig("logs:\n  poll_interval: 10ms\n  sources:\n    - path: " + logPath + "\nclassify:\n  ignore_paths: [/api/v1/search]\n")
	if code, body := post("/-/reload"); code != 200 {
		t.Fatalf("reload: %d %q", code, body)
	}
	appendLine(`{"path":"/api/v1/search","status":200,"user_id":"u1"}`)
	waitFor(t, "filtered after reload", func() bool {
		return sumCounter(t, inst.reg, "usage_exporter_log_lines_total", func(l map[string]string) string { return l["result"] })["filtered"] == 1
	})
	if p := linesParsed(t, inst.reg); p != 2 {
		t.Errorf("parsed %v after reload, want 2", p)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "usage_exporter_config_last_reload_successful 1") {
		t.Error("successful reload not reported")
	}
}

func TestStateDirLockedAgainstSecondInstance(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "a.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	startInstance(t, fastConfig(logPath), filepath.Join(dir, "state"), "")
	err := Run(context.Background(), Options{Config: fastConfig(logPath), StateDir: filepath.Join(dir, "state"),
		Listeners: []net.Listener{}, Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Run on the same state dir: %v", err)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return discardLogger()
}
