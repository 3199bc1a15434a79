package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The test binary doubles as the optimizer: with this variable set it runs
// main, so the tests exercise flags, exit codes and signals of a real process.
func TestMain(m *testing.M) {
	if os.Getenv("USAGE_OPTIMIZER_RUN_MAIN") == "1" {
		os.Exit(run())
	}
	os.Exit(m.Run())
}

func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	// Dies with the test binary, even one killed by go test's timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "USAGE_OPTIMIZER_RUN_MAIN=1")
	return cmd
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestFlagsAndConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("caching:\n  hit_rate: 0.8\n  infrastructure_monthly: -10\n"), 0o644)
	badAuth := filepath.Join(dir, "auth.yml")
	os.WriteFile(badAuth, []byte("auth:\n  oidc:\n    issuer: https://kc.example/realms/usage\n    algorithms: [RS256, HS256]\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--config.check"}, 0, "configuration OK (4 tiers"},
		{[]string{"--config.file", "../../examples/usage-optimizer.yml", "--config.check"}, 0, "configuration OK"},
		{[]string{"--config.file", bad, "--config.check"}, 1, bad + ": line 3: caching.infrastructure_monthly: must not be negative"},
		{[]string{"--config.file", filepath.Join(dir, "missing.yml")}, 1, "no such file"},
		{[]string{"--analysis.days", "91"}, 2, "--analysis.days must be from 1 to 90, not 91"},
		{[]string{"--cache.ttl", "0s"}, 2, "must be positive"},
		{[]string{"--analysis.days", "many"}, 2, "many"},
		{[]string{"--config.file", badAuth, "--config.check"}, 1, badAuth + ": line 2: auth.oidc.audience: is required with an issuer"},
	} {
		out, err := command(c.args...).CombinedOutput()
		if code := exitCode(err); code != c.code || !strings.Contains(string(out), c.says) {
			t.Errorf("%v: exit %d, want %d saying %q:\n%s", c.args, code, c.code, c.says, out)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// With its source unreachable the optimizer keeps running: the API answers
// 503 with a JSON error, the health series say the source is down, basic
// auth from --web.config.file is enforced, and SIGTERM ends it cleanly.
func TestSourceDownProcess(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	webConfig := filepath.Join(dir, "web.yml")
	os.WriteFile(webConfig, []byte("basic_auth_users:\n  ops: "+string(hash)+"\n"), 0o644)
	addr := freeAddr(t)
	cmd := command("--web.listen-address", addr, "--web.config.file", webConfig,
		"--exporter.url", "http://"+freeAddr(t)+"/metrics", "--analysis.interval", "1s", "--prometheus.timeout", "2s")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		logs <- b.String()
	}()
	defer cmd.Process.Kill()

	get := func(path string, auth bool) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if auth {
			req.SetBasicAuth("ops", "secret")
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp, string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", path, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if resp, _ := get("/metrics", false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without credentials: %d", resp.StatusCode)
	}
	resp, body := get("/api/v1/analytics/usage/overview?days=7", true)
	var e struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil ||
		!strings.Contains(e.Error, "usage source unavailable") || strings.Contains(body, "http://") ||
		strings.Contains(body, "refused") || strings.Contains(body, "goroutine") {
		t.Errorf("source down: %d %s", resp.StatusCode, body)
	}
	if resp, body := get("/api/v1/analytics/usage/overview?days=0", true); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "days must be from 1 to 90, not 0") {
		t.Errorf("days=0: %d %s", resp.StatusCode, body)
	}
	_, metrics := get("/metrics", true)
	for _, want := range []string{"usage_optimizer_source_up 0", `usage_optimizer_runs_total{result="failure"}`,
		"usage_optimizer_analysis_window_days 7"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if resp, _ := get("/-/ready", true); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ready without any good analysis: %d", resp.StatusCode)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, <-logs)
	}
	// The source's address and the dial error are in the log, not the body.
	if l := <-logs; !strings.Contains(l, "usage-optimizer stopped") || !strings.Contains(l, "connection refused") {
		t.Errorf("logs:\n%s", l)
	}
}

// SIGHUP and POST /-/reload re-read the configuration; a bad one is
// refused and the running one stays.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "optimizer.yml")
	os.WriteFile(cfg, []byte("caching:\n  hit_rate: 0.8\n"), 0o644)
	addr := freeAddr(t)
	cmd := command("--web.listen-address", addr, "--config.file", cfg, "--exporter.url", "http://"+freeAddr(t)+"/metrics")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	metric := func() string {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, line := range strings.Split(string(body), "\n") {
					if strings.HasPrefix(line, "usage_optimizer_config_last_reload_successful ") {
						return strings.Fields(line)[1]
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no reload metric: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if v := metric(); v != "1" {
		t.Fatalf("at start: %s", v)
	}
	os.WriteFile(cfg, []byte("caching:\n  hit_rate: 2\n"), 0o644)
	resp, err := http.Post("http://"+addr+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "line 2: caching.hit_rate") || metric() != "0" {
		t.Errorf("bad reload: %d %s", resp.StatusCode, body)
	}
	os.WriteFile(cfg, []byte("caching:\n  hit_rate: 0.5\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for metric() != "1" {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload a good configuration")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
}
