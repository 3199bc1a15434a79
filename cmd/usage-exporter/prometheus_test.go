package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/promtest"
)

// crashTraffic writes gateway lines and keeps what they hold, per api_service.
type crashTraffic struct {
	rng                    *rand.Rand
	calls, cost, durations map[string]float64
	input, output          float64
	n                      int
	seenUsers              map[string]bool
}

func newCrashTraffic() *crashTraffic {
	return &crashTraffic{rng: rand.New(rand.NewPCG(9, 9)), calls: map[string]float64{}, cost: map[string]float64{},
		durations: map[string]float64{}, seenUsers: map[string]bool{}}
}

// lines returns n more lines. Users and routes keep appearing for the
// first time throughout, so new series are born between every crash.
func (g *crashTraffic) lines(n int) []byte {
	var b bytes.Buffer
	for range n {
		user := fmt.Sprintf("u%04d", g.rng.IntN(50+g.n/100)) // the user population grows
		var svc, path, extra string
		status := 200
		if g.rng.IntN(20) == 0 {
			status = 500
		}
		switch k := g.rng.IntN(10); {
		case k < 4:
			svc, path = "llm", "/api/v1/llm/chat/completions"
			in, out := 100+g.rng.IntN(3000), 10+g.rng.IntN(500)
			extra = fmt.Sprintf(`,"model":"gpt-4","input_tokens":%d,"output_tokens":%d`, in, out)
			g.input += float64(in)
			g.output += float64(out)
			g.cost[svc] += (float64(in)*30 + float64(out)*60) / 1e6
		case k < 7:
			svc, path = "embeddings", fmt.Sprintf("/api/v1/embeddings/m%d", g.n/5000) // a new route now and then
			if status < 400 {
				g.cost[svc] += 0.001
			}
		default:
			svc, path = "search", "/api/v1/search"
			if status < 400 {
				g.cost[svc] += 0.0005
			}
		}
		g.calls[svc]++
		g.durations[svc]++
		fmt.Fprintf(&b, `{"timestamp":"%s","user_id":"%s","method":"POST","path":"%s","status":%d,"duration_ms":%d,"service":"%s"%s}`+"\n",
			time.Now().UTC().Format(time.RFC3339Nano), user, path, status, 1+g.rng.IntN(2000), svc, extra)
		g.n++
	}
	return b.Bytes()
}

// A real Prometheus scrapes the exporter while it is killed five times at
// random points and stopped once with SIGTERM, and restarted each time.
// Over the whole run, increase() gives exactly the lines written: calls and
// histogram counts per service, cost to 1e-9, tokens. Before, a crash
// recounted the lines after the last checkpoint on top of a counter reset,
// a SIGTERM lost what was counted after the last scrape, and a new series'
// first increments were never seen.
func TestPrometheusSeesExactlyWhatWasWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("starts prometheus")
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	stateDir := filepath.Join(dir, "state")
	config := filepath.Join(dir, "config.yml")
	os.WriteFile(config, []byte("logs:\n  poll_interval: 20ms\n  glob_interval: 50ms\n  checkpoint_interval: 100ms\n  sources:\n    - path: "+
		logPath+"\n"), 0o644)
	os.WriteFile(logPath, nil, 0o644)
	addr := freePort(t)
	// A scrape must reach Prometheus whole within its timeout (here the
	// interval) to count as having seen new series at zero: under -race, on a
	// loaded machine, a scrape of the exporter can take a few hundred ms.
	prom := promtest.Start(t, time.Second, addr)

	gen := newCrashTraffic()
	const batches, per = 100, 500
	written := make(chan struct{})
	go func() {
		defer close(written)
		f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		defer f.Close()
		for range batches {
			f.Write(gen.lines(per))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 11))
	t.Logf("stop points from seed %d", seed)
	var stderr syncBuffer
	start := func() *exec.Cmd {
		cmd := command("--config.file", config, "--state.dir", stateDir, "--web.listen-address", addr)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGKILL, syscall.SIGTERM, syscall.SIGKILL, syscall.SIGKILL, syscall.SIGKILL} {
		cmd := start()
		time.Sleep(time.Duration(600+rng.IntN(1200)) * time.Millisecond)
		cmd.Process.Signal(sig)
		if err := cmd.Wait(); sig == syscall.SIGTERM && err != nil {
			t.Fatalf("stop %d: SIGTERM ended with %v", i, err)
		}
	}
	cmd := start()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	<-written
	total := float64(batches * per)
	// Every line parsed and published, in every family: the series born
	// last are shown at zero first, then with their values.
	var last float64
	for _, q := range []string{`sum(usage_exporter_log_lines_total{result="parsed"})`, `sum(usage_requests_total)`,
		`sum(usage_user_requests_total)`, `sum(usage_request_duration_seconds_count)`} {
		waitFor(t, "Prometheus sees every line in "+q, func() bool {
			res, err := prom.Query(q)
			if err != nil || len(res) != 1 {
				return false
			}
			v, _ := strconv.ParseFloat(res[0].Value[1].(string), 64)
			return v == total
		})
	}
	// Evaluate exactly at the last scrape: no extrapolation past it, and
	// every series began at zero, so none before its first sample either.
	res, err := prom.Query(`max(timestamp(usage_exporter_log_lines_total))`)
	if err != nil || len(res) != 1 {
		t.Fatalf("last scrape: %v %v", res, err)
	}
	last, _ = strconv.ParseFloat(res[0].Value[1].(string), 64)
	at := time.UnixMilli(int64(math.Round(last * 1000)))
	query := func(q string) map[string]float64 {
		t.Helper()
		return prom.ValuesAt(t, q, at, func(m map[string]string) string { return m["api_service"] + m["direction"] })
	}
	calls := query(`sum by (api_service) (increase(usage_requests_total[1h]))`)
	counts := query(`sum by (api_service) (increase(usage_request_duration_seconds_count[1h]))`)
	cost := query(`sum by (api_service) (increase(usage_cost_dollars_total[1h]))`)
	tokens := query(`sum by (direction) (increase(usage_llm_tokens_total[1h]))`)
	users := query(`sum(increase(usage_user_requests_total[1h]))`)
	for svc, want := range gen.calls {
		if calls[svc] != want || counts[svc] != want {
			t.Errorf("%s: increase() of calls %v, of histogram counts %v; %v written", svc, calls[svc], counts[svc], want)
		}
		if math.Abs(cost[svc]-gen.cost[svc]) > 1e-9 {
			t.Errorf("%s: increase() of cost %.12f, written %.12f", svc, cost[svc], gen.cost[svc])
		}
	}
	if tokens["input"] != gen.input || tokens["output"] != gen.output {
		t.Errorf("tokens %v, written input %v output %v", tokens, gen.input, gen.output)
	}
	if users[""] != total {
		t.Errorf("increase() of the per-user calls %v, written %v (new users' first calls lost?)", users[""], total)
	}
	if resets, _ := prom.QueryAt(`sum(resets(usage_requests_total[1h]))`, at); len(resets) != 1 || resets[0].Value[1] != "0" {
		t.Errorf("counter resets seen across restarts: %v", resets)
	}
	if never, _ := prom.QueryAt(`min_over_time(usage_user_requests_total[1h]) > 0`, at); len(never) > 0 {
		t.Errorf("%d user series never seen at zero, e.g. %v", len(never), never[0].Metric)
	}
	if t.Failed() {
		t.Logf("exporter log:\n%s", stderr.String())
	}
}
