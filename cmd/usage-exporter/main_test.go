package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/usage-exporter/usage-exporter/exporter"
	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

// The test binary doubles as the exporter: with this variable set it runs
// main, so the tests exercise flags, exit codes and signals of a real process.
func TestMain(m *testing.M) {
	if os.Getenv("USAGE_EXPORTER_RUN_MAIN") == "1" {
		os.Exit(run())
	}
	os.Exit(m.Run())
}

func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	// Dies with the test binary, even one killed by go test's timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "USAGE_EXPORTER_RUN_MAIN=1")
	return cmd
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(good, []byte("logs:\n  sources:\n    - path: /tmp/x.log\n"), 0o644)
	os.WriteFile(bad, []byte("logs:\n  sources:\n    - path: /tmp/x.log\n      format: xml\n"), 0o644)

	out, err := command("--config.file", good, "--config.check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") {
		t.Fatalf("good config: %v\n%s", err, out)
	}
	out, err = command("--config.file", bad, "--config.check").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("bad config: exit %v, want 1\n%s", err, out)
	}
	if want := bad + `: line 4: logs.sources[0].format: must be one of json, nginx, not "xml"`; !strings.Contains(string(out), want) {
		t.Fatalf("bad config message:\n%s\nwant %q", out, want)
	}
	// A bad glob fails the check, with its line, not the start.
	badGlob := filepath.Join(dir, "glob.yml")
	os.WriteFile(badGlob, []byte("logs:\n  sources:\n    - path: logs/[x.log\n"), 0o644)
	out, err = command("--config.file", badGlob, "--config.check").CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "line 3: logs.sources[0].path: bad pattern") {
		t.Fatalf("bad glob: %v\n%s", err, out)
	}
	// Flags are validated like the file.
	out, err = command("--log.path", "/tmp/x.log", "--log.format", "csv").CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "csv") {
		t.Fatalf("bad flag: %v\n%s", err, out)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func scrape(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// startExporter runs the binary with a configuration file and a state
// directory on a free port until stop (SIGTERM, and a clean exit expected).
func startExporter(t *testing.T, config, stateDir string) (addr string, stop func()) {
	t.Helper()
	addr = freePort(t)
	cmd := command("--config.file", config, "--state.dir", stateDir, "--web.listen-address", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the exporter", func() bool { return scrape(addr) != "" })
	return addr, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("exporter: %v", err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSignals: SIGHUP reloads (a bad file is refused and ingestion goes on),
// SIGTERM stops cleanly with the final checkpoint written.
func TestSignals(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	config := filepath.Join(dir, "config.yml")
	stateDir := filepath.Join(dir, "state")
	line := `{"path":"/api/v1/search","status":200,"user_id":"u1","duration_ms":5}` + "\n"
	os.WriteFile(logFile, []byte(line), 0o644)
	os.WriteFile(config, []byte("logs:\n  poll_interval: 20ms\n  sources:\n    - path: "+logFile+"\n"), 0o644)
	addr := freePort(t)
	cmd := command("--config.file", config, "--state.dir", stateDir, "--web.listen-address", addr, "--log.level", "debug")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	counted := func(n string) func() bool {
		return func() bool {
			return strings.Contains(scrape(addr), `usage_exporter_log_lines_total{result="parsed",source="`+logFile+`"} `+n+"\n")
		}
	}
	waitFor(t, "first line", counted("1"))

	os.WriteFile(config, []byte("logs:\n  sources: []\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "failed reload reported", func() bool {
		return strings.Contains(scrape(addr), "usage_exporter_config_last_reload_successful 0")
	})
	f, _ := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(line)
	f.Close()
	waitFor(t, "second line under the old configuration", counted("2"))

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	cp, err := exporter.ReadState(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Positions) != 1 || cp.Positions[0].Offset != int64(2*len(line)) {
		t.Fatalf("checkpoint positions %+v, want one file at offset %d", cp.Positions, 2*len(line))
	}
	if !strings.Contains(stderr.String(), "configuration reload failed") {
		t.Errorf("reload failure not logged:\n%s", stderr.String())
	}
}

// testStart dates the ledger tests' lines: the real binary keeps the
// billing periods around the clock's (the test's start).
var testStart = time.Now().UTC()

// testPeriod is the billing period of testStart (calendar months, UTC).
var testPeriod = testStart.Format("2006-01") + "-01"

// ledgerLine is one request of user u%02d with tokens, at testStart.
func ledgerLine(i int) (user string, tokens int, line string) {
	user = fmt.Sprintf("u%02d", i%20)
	tokens = 1 + i%13
	line = fmt.Sprintf(`{"timestamp":"%s","user_id":"%s","path":"/api/v1/llm/chat/completions","status":200,"model":"gpt-4o","input_tokens":%d,"output_tokens":0,"seq":%d}`+"\n",
		testStart.Format(time.RFC3339), user, tokens, i)
	return
}

// TestCrashExactlyOnce kills the exporter (SIGKILL, no chance to save) at
// random points while 100,000 lines are written, five times, and restarts
// it each time: the ledger ends with exactly each user's calls and tokens.
// Once with the embedded ledger (the state file), once with Redis.
func TestCrashExactlyOnce(t *testing.T) {
	for _, mode := range []string{"state-file", "redis"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			logPath := filepath.Join(dir, "access.log")
			stateDir := filepath.Join(dir, "state")
			config := filepath.Join(dir, "config.yml")
			cfg := "logs:\n  poll_interval: 20ms\n  glob_interval: 50ms\n  checkpoint_interval: 100ms\n  sources:\n    - path: " + logPath + "\n"
			var srv *redistest.Server
			if mode == "redis" {
				srv = redistest.Start(t)
				cfg += "redis:\n  url: " + srv.URL() + "\n  instance: crash-test\n  flush_interval: 20ms\n"
			}
			os.WriteFile(config, []byte(cfg), 0o644)
			os.WriteFile(logPath, nil, 0o644)
			addr := freePort(t)

			const total = 100000
			want := map[string][2]int64{}
			written := make(chan struct{})
			go func() {
				defer close(written)
				f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
				defer f.Close()
				var buf bytes.Buffer
				for i := 0; i < total; i++ {
					_, _, line := ledgerLine(i)
					buf.WriteString(line)
					if (i+1)%500 == 0 {
						f.Write(buf.Bytes())
						buf.Reset()
						time.Sleep(15 * time.Millisecond)
					}
				}
			}()
			for i := 0; i < total; i++ {
				user, tokens, _ := ledgerLine(i)
				w := want[user]
				want[user] = [2]int64{w[0] + 1, w[1] + int64(tokens)}
			}

			seed := time.Now().UnixNano()
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			t.Logf("kill points from seed %d", seed)
			var stderr bytes.Buffer
			start := func() *exec.Cmd {
				cmd := command("--config.file", config, "--state.dir", stateDir, "--web.listen-address", addr)
				stderr.Reset()
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				return cmd
			}
			for kill := 0; kill < 5; kill++ {
				cmd := start()
				time.Sleep(time.Duration(150+rng.IntN(400)) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()
			}
			cmd := start()
			defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
			<-written

			got := func() map[string][2]int64 {
				out := map[string][2]int64{}
				if srv != nil {
					c := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
					defer c.Close()
					fields, _ := c.HGetAll(context.Background(), "usage:ledger:"+testPeriod).Result()
					for f, v := range fields {
						n, _ := strconv.ParseInt(v, 10, 64)
						u := out[f[2:]]
						if f[:2] == "c:" {
							u[0] = n
						} else {
							u[1] = n
						}
						out[f[2:]] = u
					}
					return out
				}
				for user := range want {
					var q struct {
						Used map[string]int64 `json:"used"`
					}
					resp, err := http.Get("http://" + addr + "/api/v1/quotas?user=" + user + "&period=" + testPeriod)
					if err != nil {
						return nil
					}
					json.NewDecoder(resp.Body).Decode(&q)
					resp.Body.Close()
					out[user] = [2]int64{q.Used["calls"], q.Used["tokens"]}
				}
				return out
			}
			deadline := time.Now().Add(60 * time.Second)
			for {
				g := got()
				if fmt.Sprint(g) == fmt.Sprint(want) {
					break
				}
				for user, w := range want {
					if g[user][0] > w[0] || g[user][1] > w[1] {
						t.Fatalf("%s counted twice: %v, wrote %v", user, g[user], w)
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("ledger %v\nwant   %v\nexporter log:\n%s", g, want, stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// The environment variables of the system this replaces are read by the
// flags, never by the configuration's defaults: LOG_DIR names the default
// source's directory, LITELLM_PROXY_URL the proxy, REDIS_HOST and
// REDIS_PORT the Redis of the shared ledger.
func TestEnvironmentDefaults(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.log"), []byte(`{"path":"/api/v1/search","status":200,"user_id":"u1"}`+"\n"), 0o644)
	addr := freePort(t)
	cmd := command("--state.dir", filepath.Join(t.TempDir(), "state"), "--web.listen-address", addr, "--log.start", "beginning")
	litellmAddr := freePort(t)
	cmd.Env = append(cmd.Env, "LOG_DIR="+dir+"/", "LITELLM_PROXY_URL=http://"+litellmAddr,
		"REDIS_HOST=127.0.0.1", "REDIS_PORT="+strconv.Itoa(srv.Port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitFor(t, "the line of $LOG_DIR/a.log", func() bool {
		return strings.Contains(scrape(addr), `usage_exporter_log_lines_total{result="parsed",source="`+dir+`/*.log"} 1`+"\n")
	})
	litellmUp := fmt.Sprintf(`usage_exporter_litellm_up{endpoint="http://%s/metrics",target="http://%s"} 0`+"\n", litellmAddr, litellmAddr)
	for _, want := range []string{litellmUp, "usage_exporter_redis_up 1\n"} {
		waitFor(t, want, func() bool { return strings.Contains(scrape(addr), want) })
	}
}

// With --web.systemd-socket the exporter serves on the socket systemd hands
// it (LISTEN_FDS, LISTEN_PID), not on --web.listen-address.
func TestSystemdSocketActivation(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // the child holds the socket through f
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.log"), nil, 0o644)
	// exec keeps the shell's pid, which LISTEN_PID must name.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, os.Args[0],
		"--web.systemd-socket", "--log.path", filepath.Join(dir, "a.log"), "--state.dir", filepath.Join(dir, "state"))
	cmd.Env = append(os.Environ(), "USAGE_EXPORTER_RUN_MAIN=1")
	cmd.ExtraFiles = []*os.File{f} // fd 3, where systemd puts the first socket
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitFor(t, "metrics on the activated socket", func() bool {
		return strings.Contains(scrape(l.Addr().String()), "usage_exporter_build_info")
	})
	if !strings.Contains(stderr.String(), "systemd activated listeners") {
		t.Errorf("no word of socket activation in the log:\n%s", stderr.String())
	}
}

// vsock:// addresses listen on the VM socket; a TCP address beside it
// serves. This machine can neither connect to its own CID nor list vsock
// sockets (ss has no vsock_diag here), so the witness is the listener's own
// address in the log, which exporter-toolkit writes once the socket is bound:
// before, the flag failed with "too many colons in address".
func TestVsockListener(t *testing.T) {
	if _, err := os.Stat("/dev/vsock"); err != nil {
		t.Fatalf("no /dev/vsock on this machine: %v", err)
	}
	port := 20000 + rand.IntN(30000)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.log"), nil, 0o644)
	addr := freePort(t)
	cmd := command("--web.listen-address", addr, "--web.listen-address", fmt.Sprintf("vsock://:%d", port),
		"--log.path", filepath.Join(dir, "a.log"), "--state.dir", filepath.Join(dir, "state"))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitFor(t, "metrics on the TCP address", func() bool { return strings.Contains(scrape(addr), "usage_exporter_build_info") })
	if want := `msg="Listening on" address=vm(`; !strings.Contains(stderr.String(), want) ||
		!strings.Contains(stderr.String(), fmt.Sprintf("):%d\n", port)) {
		t.Errorf("no vsock listener on port %d in the log:\n%s", port, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer that a process can write while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
