package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// quotaLines are the usage_quota_* samples of a scrape, sorted.
func quotaLines(body string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "usage_quota_") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// labelsOf lists the user label values of a family in a scrape.
func labelsOf(body, family string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, family+"{") {
			continue
		}
		i := strings.Index(l, `user="`)
		u := l[i+6 : i+6+strings.IndexByte(l[i+6:], '"')]
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// The real binary, with more users than labels and hashed ids: the heavy
// users who came last get the labels; a restart (SIGTERM, start) serves
// every usage_quota_* series at once as it was, tiers included, and keeps
// the labels; no user id is written to the state directory; and idle, the
// state file is not written at all while checkpoints find it current.
func TestRestartKeepsUsersAndQuotas(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	stateDir := filepath.Join(dir, "state")
	config := filepath.Join(dir, "config.yml")
	os.WriteFile(config, []byte("logs:\n  poll_interval: 20ms\n  checkpoint_interval: 100ms\n  sources:\n    - path: "+logPath+
		"\nusers: {label: hashed, hash_key: test-key, max_users: 3}\nmetrics: {quota_ratio: true}\n"), 0o644)
	hash := func(id string) string {
		mac := hmac.New(sha256.New, []byte("test-key"))
		mac.Write([]byte(id))
		return hex.EncodeToString(mac.Sum(nil)[:8])
	}
	var b strings.Builder
	line := func(user, tier string, n int) {
		for range n {
			fmt.Fprintf(&b, `{"timestamp":"%s","user_id":"%s","tier":"%s","path":"/api/v1/search","status":200,"duration_ms":5}`+"\n",
				testStart.Format(time.RFC3339), user, tier)
		}
	}
	for _, u := range []string{"light-1@example.com", "light-2@example.com", "light-3@example.com"} {
		line(u, "trial", 1)
	}
	heavy := []string{"heavy-1@example.com", "heavy-2@example.com", "heavy-3@example.com"}
	for _, u := range heavy {
		line(u, "starter", 20)
	}
	os.WriteFile(logPath, []byte(b.String()), 0o644)
	want := []string{"__other__"}
	for _, u := range heavy {
		want = append(want, hash(u))
	}
	slices.Sort(want)

	start := func() (string, func()) { return startExporter(t, config, stateDir) }
	addr, stop := start()
	waitFor(t, "the heavy users' labels", func() bool {
		return slices.Equal(labelsOf(scrape(addr), "usage_quota_used"), want)
	})
	before := quotaLines(scrape(addr))
	stop()
	for _, raw := range []string{"light-1@example.com", "heavy-1@example.com", "example.com"} {
		filepath.Walk(stateDir, func(path string, info os.FileInfo, err error) error {
			if data, _ := os.ReadFile(path); err == nil && !info.IsDir() && strings.Contains(string(data), raw) {
				t.Errorf("%s holds %q under users.label: hashed", path, raw)
			}
			return nil
		})
	}

	addr, stop = start()
	defer stop()
	if after := quotaLines(scrape(addr)); !slices.Equal(after, before) {
		t.Errorf("usage_quota_* after the restart:\n%s\nbefore:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
	// Idle: checkpoints come (their timestamp moves), the file stays.
	file := filepath.Join(stateDir, "checkpoint.bin")
	checkpoint := func() string {
		for _, l := range strings.Split(scrape(addr), "\n") {
			if strings.HasPrefix(l, "usage_exporter_checkpoint_last_success_timestamp_seconds ") {
				return l
			}
		}
		return ""
	}
	at := checkpoint()
	waitFor(t, "a checkpoint after the first scrapes", func() bool { return checkpoint() != at })
	fi, _ := os.Stat(file)
	for range 5 {
		at := checkpoint()
		waitFor(t, "an idle checkpoint", func() bool { return checkpoint() != at })
	}
	if again, _ := os.Stat(file); !again.ModTime().Equal(fi.ModTime()) {
		t.Errorf("the state file was written while idle: %s, then %s", fi.ModTime(), again.ModTime())
	}
	// The labels came back with it: a heavy user's next call is theirs.
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	b.Reset()
	line(heavy[0], "starter", 1)
	f.WriteString(b.String())
	f.Close()
	waitFor(t, "the heavy user's own series", func() bool {
		return strings.Contains(scrape(addr), `usage_user_requests_total{api_service="search",tier="starter",user="`+hash(heavy[0])+`"}`)
	})
}
