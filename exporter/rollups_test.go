package exporter

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/redistest"
	"github.com/usage-exporter/usage-exporter/internal/window"
)

// windowLines writes n gateway lines dated from at, a second apart: every
// third a search of user u<i%5>, the others llm calls of gpt-4 (1,000 and
// 100 tokens: $0.036) with a duration of 250 ms.
func windowLines(n int, at time.Time, user string) []byte {
	var b strings.Builder
	for i := range n {
		ts := at.Add(time.Duration(i) * time.Second).UTC().Format(time.RFC3339)
		if i%3 == 0 {
			fmt.Fprintf(&b, `{"timestamp":%q,"user_id":"%s%d","method":"GET","path":"/api/v1/search","status":200,"duration_ms":250}`+"\n", ts, user, i%5)
		} else {
			fmt.Fprintf(&b, `{"timestamp":%q,"user_id":"%s%d","method":"POST","path":"/api/v1/llm/chat/completions","status":200,"duration_ms":250,"model":"gpt-4","input_tokens":1000,"output_tokens":100}`+"\n", ts, user, i%5)
		}
	}
	return []byte(b.String())
}

func getWindow(t *testing.T, url string, days int) (*window.Window, int) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/window?days=%d", url, days))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var w window.Window
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			t.Fatal(err)
		}
	}
	return &w, resp.StatusCode
}

// The window endpoint serves the rollups of the lines, by log time; bad
// parameters are a 400 with a message.
func TestWindowEndpoint(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "a.log")
	day := time.Date(2025, 11, 14, 10, 0, 0, 0, time.UTC)
	os.WriteFile(logPath, append(windowLines(30, day.AddDate(0, 0, -1), "u"), windowLines(60, day, "u")...), 0o644)
	inst := startInstance(t, fastConfig(logPath), filepath.Join(dir, "state"), "")
	waitFor(t, "both days in the window", func() bool {
		w, _ := getWindow(t, inst.url, 2)
		return w.Services["llm"] != nil && w.Services["llm"].Calls+w.Services["search"].Calls == 90
	})
	w, _ := getWindow(t, inst.url, 1)
	if llm := w.Services["llm"]; llm == nil || llm.Calls != 40 || !w.Start.Equal(day.Truncate(24*time.Hour)) ||
		math.Abs(w.Models["gpt-4"].Cost-40*0.036) > 1e-9 || w.Hourly[10] != 60 {
		t.Errorf("one day: %+v, start %s, hourly %v", w.Services, w.Start, w.Hourly)
	}
	for _, q := range []string{"days=0", "days=367", "days=x", "days=1&days=2"} {
		resp, err := http.Get(inst.url + "/api/v1/window?" + q)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body["error"], "days must be one integer from 1 to 366") {
			t.Errorf("%s: %d %v", q, resp.StatusCode, body)
		}
	}
}

// Two exporters sharing a ledger in Redis share their rollups: the window of
// either is both files' lines, and a restart puts nothing twice.
func TestTwoExportersShareTheirRollups(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	day := time.Date(2025, 11, 14, 10, 0, 0, 0, time.UTC)
	os.WriteFile(filepath.Join(dir, "a.log"), windowLines(300, day, "a"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.log"), append(windowLines(90, day.AddDate(0, 0, -2), "b"), windowLines(30, day, "b")...), 0o644)
	shared := func(log, instance string) *Config {
		cfg := redisConfig(fastConfig(filepath.Join(dir, log)), srv.URL(), instance)
		cfg.Rollups.PushInterval = time.Second
		return cfg
	}
	ia := startInstance(t, shared("a.log", "gw-a"), filepath.Join(dir, "sa"), "")
	ib := startInstance(t, shared("b.log", "gw-b"), filepath.Join(dir, "sb"), "")
	complete := func(url string) bool {
		w, code := getWindow(t, url, 7)
		return code == http.StatusOK && w.Services["llm"] != nil && w.Services["llm"].Calls+w.Services["search"].Calls == 420
	}
	waitFor(t, "both exporters' lines in a's window", func() bool { return complete(ia.url) })
	waitFor(t, "and in b's", func() bool { return complete(ib.url) })
	w, _ := getWindow(t, ia.url, 7)
	if len(w.Users) != 10 || len(w.Daily) != 2 || w.Daily[1].Calls != 330 || w.Services["search"].UniqueUsers != 10 {
		t.Errorf("users %d, daily %+v, search %+v", len(w.Users), w.Daily, w.Services["search"])
	}
	if one, _ := getWindow(t, ib.url, 1); one.Services["llm"].Calls+one.Services["search"].Calls != 330 {
		t.Errorf("one day, the newest line's of either: %+v", one.Services)
	}
	// b restarts: what it puts again replaces what it put.
	if err := ib.stop(); err != nil {
		t.Fatal(err)
	}
	ib = startInstance(t, shared("b.log", "gw-b"), filepath.Join(dir, "sb"), "")
	for range 3 {
		if !complete(ib.url) {
			w, _ := getWindow(t, ib.url, 7)
			t.Fatalf("after a restart: %+v", w.Services)
		}
	}
}
