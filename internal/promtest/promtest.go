// Package promtest starts a real Prometheus server for tests, on a free
// loopback port, with its TSDB in a temporary directory.
package promtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a prometheus process the test owns.
type Server struct {
	URL string
	dir string
	cmd *exec.Cmd
	log *os.File
}

// Start runs prometheus (the Debian package; `make test` installs it)
// scraping targets (host:port) every interval.
func Start(t testing.TB, interval time.Duration, targets ...string) *Server {
	t.Helper()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: [%s]\n",
		interval, interval, strings.Join(quoted, ", "))
	return StartConfig(t, cfg, "")
}

// StartConfig runs prometheus with the configuration cfg, written as
// prometheus.yml into dir (a new temporary directory when empty), so that
// relative rule_files resolve there; extra flags follow.
func StartConfig(t testing.TB, cfg, dir string, flags ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not installed (make deps installs it): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: "http://" + addr, dir: dir, log: logf}
	s.cmd = exec.Command(bin, append([]string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr}, flags...)...)
	// Dies with the test binary, even one killed by go test's timeout.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not become ready on %s:\n%s", addr, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log is what prometheus wrote so far.
func (s *Server) Log() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "prometheus.log"))
	return string(data)
}

// Stop ends the process.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
	s.log.Close()
}

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Query runs an instant PromQL query now.
func (s *Server) Query(q string) ([]Sample, error) { return s.QueryAt(q, time.Time{}) }

// QueryAt runs an instant PromQL query at ts (now when zero).
func (s *Server) QueryAt(q string, ts time.Time) ([]Sample, error) {
	u := s.URL + "/api/v1/query?query=" + url.QueryEscape(q)
	if !ts.IsZero() {
		u += fmt.Sprintf("&time=%.3f", float64(ts.UnixMilli())/1000)
	}
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []Sample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, body.Error)
	}
	return body.Data.Result, nil
}

// WaitFor polls q until it returns at least one sample, or fails the test.
func (s *Server) WaitFor(t testing.TB, q string, timeout time.Duration) []Sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := s.Query(q)
		if err == nil && len(res) > 0 {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result for %s after %s (last error: %v)", q, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ValuesAt runs q at at and returns its values by key(labels), failing the
// test on an error.
func (s *Server) ValuesAt(t testing.TB, q string, at time.Time, key func(labels map[string]string) string) map[string]float64 {
	t.Helper()
	res, err := s.QueryAt(q, at)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, smp := range res {
		str, _ := smp.Value[1].(string)
		v, _ := strconv.ParseFloat(str, 64)
		out[key(smp.Metric)] = v
	}
	return out
}
