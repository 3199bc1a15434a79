// Command history measures history: it writes days of gateway logs (users,
// routes and models as given), backfills them with the built exporter into
// TSDB blocks (with the recorded sums' history), starts a real Prometheus on
// them, and times the optimizer's Prometheus source over the whole window,
// reading the raw series and then the recording rules' series, with
// Prometheus' peak memory for each (restarted in between).
// `make bench-history` runs it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/model"

	"github.com/usage-exporter/usage-exporter/optimizer"
)

func main() {
	var (
		exporterBin = flag.String("exporter", "./usage-exporter", "the exporter binary")
		dir         = flag.String("dir", "bench/data/history", "where logs and blocks go")
		days        = flag.Int("days", 90, "days of history")
		users       = flag.Int("users", 1000, "users")
		routes      = flag.Int("routes", 200, "routes")
		models      = flag.Int("models", 10, "models")
		perDay      = flag.Int("per-day", 20000, "lines a day")
		step        = flag.Duration("step", 5*time.Minute, "backfill step")
		reuse       = flag.Bool("reuse", false, "keep the logs and blocks of the last run (same flags)")
	)
	flag.Parse()
	if err := run(*exporterBin, *dir, *days, *users, *routes, *models, *perDay, *step, *reuse); err != nil {
		fmt.Fprintln(os.Stderr, "history:", err)
		os.Exit(1)
	}
}

func run(exporterBin, dir string, days, users, routes, models, perDay int, step time.Duration, reuse bool) error {
	data := filepath.Join(dir, "prometheus")
	nowFile := filepath.Join(dir, "now")
	now := time.Now().UTC().Truncate(time.Minute)
	if reuse {
		b, err := os.ReadFile(nowFile)
		if err != nil {
			return fmt.Errorf("-reuse: %w", err)
		}
		if now, err = time.Parse(time.RFC3339, strings.TrimSpace(string(b))); err != nil {
			return err
		}
	}
	start := now.Add(-time.Duration(days-1) * 24 * time.Hour).Truncate(24 * time.Hour)
	if !reuse {
		os.RemoveAll(dir)
		if err := os.MkdirAll(data, 0o755); err != nil {
			return err
		}
		os.WriteFile(nowFile, []byte(now.Format(time.RFC3339)), 0o644)
		logPath := filepath.Join(dir, "gateway.log")
		lines, err := writeLog(logPath, start, now.Add(-time.Hour), users, routes, models, perDay)
		if err != nil {
			return err
		}
		fmt.Printf("history: %d lines over %d days, %d users, %d routes, %d models\n", lines, days, users, routes, models)
		t0 := time.Now()
		out, err := exec.Command(exporterBin, "backfill", "--log.path="+logPath, "--log.format=json",
			"--from="+start.Format(time.RFC3339), "--to="+now.Format(time.RFC3339), "--step="+step.String(),
			"--out="+data, "--label=job=usage-exporter", "--label=instance=gateway:9816").CombinedOutput()
		if err != nil {
			return fmt.Errorf("backfill: %v\n%s", err, out)
		}
		fmt.Printf("backfill: %s", lastLines(string(out), 2))
		fmt.Printf("backfill took %s\n", time.Since(t0).Round(time.Millisecond))
	}

	measure := func(what string, hide bool) error {
		prom, stop, err := startPrometheus(dir, data)
		if err != nil {
			return err
		}
		defer stop()
		q, err := optimizer.NewQuerier(prom.url)
		if err != nil {
			return err
		}
		if hide {
			q = hideRecorded{q}
		}
		src := &optimizer.PrometheusSource{Q: q, URL: prom.url}
		t := time.Now()
		snap, err := src.Snapshot(context.Background(), days, now)
		if err != nil {
			return err
		}
		took := time.Since(t)
		fmt.Printf("optimizer, %d days, %s: %s, %.0f calls, recorded series read %d, Prometheus peak RSS %.0f MiB\n",
			days, what, took.Round(time.Millisecond), snap.TotalCalls(), len(snap.RecordingRules), prom.peakMiB())
		return nil
	}
	if err := measure("raw series", true); err != nil {
		return err
	}
	return measure("recording rules", false)
}

// hideRecorded answers the optimizer's question for recorded series with
// none: it reads the raw series.
type hideRecorded struct{ optimizer.Querier }

func (h hideRecorded) Query(ctx context.Context, q string, t time.Time) (model.Vector, error) {
	if strings.Contains(q, "__name__=~") {
		return nil, nil
	}
	return h.Querier.Query(ctx, q, t)
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n") + "\n"
}

// writeLog writes perDay JSON lines a day, evenly in time, from start to end.
func writeLog(path string, start, end time.Time, users, routes, models, perDay int) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(7, 9))
	services := []string{"llm", "embeddings", "search", "tts", "stt"}
	n := int(end.Sub(start).Hours() / 24 * float64(perDay))
	stepNs := end.Sub(start).Nanoseconds() / int64(n)
	for i := range n {
		t := start.Add(time.Duration(int64(i) * stepNs))
		svc := services[rng.IntN(len(services))]
		route := rng.IntN(routes / len(services))
		fmt.Fprintf(w, `{"timestamp":"%s","user_id":"user_%04d","method":"POST","path":"/api/v1/%s/op%03d","status":%d,"duration_ms":%d,"size":%d,"service":"%s"`,
			t.Format("2006-01-02T15:04:05.000Z"), rng.IntN(users), svc, route, []int{200, 200, 200, 200, 500}[rng.IntN(5)], 10+rng.IntN(3000), 200+rng.IntN(5000), svc)
		if svc == "llm" {
			fmt.Fprintf(w, `,"model":"model-%d","input_tokens":%d,"output_tokens":%d,"cost":%g`, rng.IntN(models), 100+rng.IntN(3000), 10+rng.IntN(500), float64(1+rng.IntN(50))/1000)
		}
		w.WriteString("}\n")
	}
	return n, w.Flush()
}

type promProcess struct {
	url string
	pid int
}

// peakMiB is the process' peak resident memory (VmHWM).
func (p *promProcess) peakMiB() float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func startPrometheus(dir, data string) (*promProcess, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {scrape_interval: 1m}\n"), 0o644); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command("prometheus", "--config.file="+cfg, "--storage.tsdb.path="+data, "--storage.tsdb.retention.time=400d",
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("prometheus did not start")
		}
	}
	return &promProcess{url: "http://" + addr, pid: cmd.Process.Pid}, stop, nil
}
