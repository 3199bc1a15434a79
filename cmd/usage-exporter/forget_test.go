package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

// `usage-exporter forget` on the real binary, with the ledger in a real
// Redis: afterwards no file of the state directory and no key of Redis holds
// the id, the printed call deletes the user's series in Prometheus, and the
// user's later lines count as __forgotten__.
func TestForgetAUser(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	stateDir := filepath.Join(dir, "state")
	config := filepath.Join(dir, "config.yml")
	os.WriteFile(config, []byte("logs:\n  poll_interval: 20ms\n  checkpoint_interval: 100ms\n  sources:\n    - path: "+logPath+
		"\nredis:\n  url: "+srv.URL()+"\n  instance: forget\n"), 0o644)
	const gone, kept = "alice@example.com", "bob@example.com"
	lines := func(user string, n int) string {
		var b strings.Builder
		for range n {
			fmt.Fprintf(&b, `{"timestamp":"%s","user_id":"%s","path":"/api/v1/search","status":200,"duration_ms":5}`+"\n",
				testStart.Format(time.RFC3339), user)
		}
		return b.String()
	}
	os.WriteFile(logPath, []byte(lines(gone, 3)+lines(kept, 2)), 0o644)

	start := func() (string, func()) { return startExporter(t, config, stateDir) }
	requests := func(body, user string) string {
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "usage_user_requests_total{") && strings.Contains(l, `user="`+user+`"`) {
				return l[strings.LastIndexByte(l, ' ')+1:]
			}
		}
		return ""
	}
	addr, stop := start()
	waitFor(t, "both users counted", func() bool { b := scrape(addr); return requests(b, gone) == "3" && requests(b, kept) == "2" })
	waitFor(t, "the ledger in Redis", func() bool { return ledgerHolds(t, srv.URL(), gone) })

	// While the exporter runs, forget refuses: it edits the state.
	out, err := command("forget", "--config.file", config, "--state.dir", stateDir, "--user", gone).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "stop the exporter first") {
		t.Fatalf("forget beside a running exporter: %v\n%s", err, out)
	}
	stop()

	out, err = command("forget", "--config.file", config, "--state.dir", stateDir, "--user", gone,
		"--prometheus.url", "http://prometheus:9090").CombinedOutput()
	if err != nil {
		t.Fatalf("forget: %v\n%s", err, out)
	}
	call := `curl -X POST 'http://prometheus:9090/api/v1/admin/tsdb/delete_series?match[]=%7Buser%3D%22alice%40example.com%22%7D'`
	for _, want := range []string{call, "series", "Redis: 1 fields of the shared ledger removed, 1 exporters' rollup days rewritten"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("forget's output lacks %q:\n%s", want, out)
		}
	}
	holds := func() {
		t.Helper()
		filepath.Walk(stateDir, func(path string, info os.FileInfo, err error) error {
			if data, _ := os.ReadFile(path); err == nil && !info.IsDir() && strings.Contains(string(data), gone) {
				t.Errorf("%s still holds %q", path, gone)
			}
			return nil
		})
		if ledgerHolds(t, srv.URL(), gone) || redisHolds(t, srv.URL(), gone) {
			t.Errorf("Redis still holds %q", gone)
		}
	}
	holds()
	// Twice is harmless: nothing more to remove.
	if out, err := command("forget", "--config.file", config, "--state.dir", stateDir, "--user", gone).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "0 ledger entries, 0 series") {
		t.Fatalf("forget again: %v\n%s", err, out)
	}

	// Their next lines count, as __forgotten__; bob is untouched.
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(lines(gone, 4) + lines(kept, 1))
	f.Close()
	addr, stop = start()
	waitFor(t, "the new lines", func() bool {
		b := scrape(addr)
		return requests(b, "__forgotten__") == "4" && requests(b, kept) == "3"
	})
	if b := scrape(addr); strings.Contains(b, gone) {
		t.Errorf("the exposition names %q after forget", gone)
	}
	stop()
	holds()
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return redis.NewClient(opt)
}

// ledgerHolds reports whether a field of the shared ledger names user.
func ledgerHolds(t *testing.T, url, user string) bool {
	c := redisClient(t, url)
	defer c.Close()
	ctx := context.Background()
	keys, _ := c.Keys(ctx, "usage:ledger:*").Result()
	for _, k := range keys {
		fields, _ := c.HKeys(ctx, k).Result()
		for _, f := range fields {
			if strings.Contains(f, user) {
				return true
			}
		}
	}
	return false
}

// redisHolds reports whether any key or value in Redis contains s.
func redisHolds(t *testing.T, url, s string) bool {
	c := redisClient(t, url)
	defer c.Close()
	ctx := context.Background()
	keys, _ := c.Keys(ctx, "*").Result()
	for _, k := range keys {
		if strings.Contains(k, s) {
			return true
		}
		dump, _ := c.Dump(ctx, k).Result()
		if strings.Contains(dump, s) {
			t.Logf("key %s holds %q", k, s)
			return true
		}
	}
	return false
}
