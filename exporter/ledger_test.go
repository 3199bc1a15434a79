package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, body)
		}
	}
	return resp.StatusCode
}

// quotaSeries reads usage_quota_* keyed user/tier/resource.
func quotaSeries(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	return sumCounter(t, reg, name, func(l map[string]string) string { return l["user"] + "/" + l["tier"] + "/" + l["resource"] })
}

func TestQuotaPeriodsSeriesAndAPI(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	var lines bytes.Buffer
	line := func(ts, user, tier string, tokens int) {
		fmt.Fprintf(&lines, `{"timestamp":"%s","user_id":"%s","tier":"%s","path":"/api/v1/llm/chat/completions","status":200,"model":"gpt-4","input_tokens":%d,"output_tokens":0}`+"\n",
			ts, user, tier, tokens)
	}
	for i := 0; i < 5; i++ {
		line("2025-10-31T23:59:0"+fmt.Sprint(i)+"Z", "alice", "trial", 100)
	}
	for i := 0; i < 3; i++ {
		line("2025-11-01T00:00:0"+fmt.Sprint(i)+"Z", "alice", "trial", 1000)
	}
	line("2025-11-01T00:01:00Z", "bob", "enterprise", 50)
	line("2025-11-01T00:02:00Z", "", "", 7) // anonymous: not in the ledger
	os.WriteFile(logPath, lines.Bytes(), 0o644)
	cfg := fastConfig(logPath)
	cfg.Metrics.QuotaRatio = true
	inst := startInstance(t, cfg, filepath.Join(dir, "state"), "")
	waitFor(t, "lines", func() bool { return linesParsed(t, inst.reg) == 10 })
	waitFor(t, "quota series", func() bool { return len(quotaSeries(t, inst.reg, "usage_quota_used")) == 4 })

	used := quotaSeries(t, inst.reg, "usage_quota_used")
	want := map[string]float64{"alice/trial/calls": 3, "alice/trial/tokens": 3000, "bob/enterprise/calls": 1, "bob/enterprise/tokens": 50}
	if fmt.Sprint(used) != fmt.Sprint(want) {
		t.Errorf("usage_quota_used (November) %v, want %v", used, want)
	}
	ratios := quotaSeries(t, inst.reg, "usage_quota_used_ratio")
	if ratios["alice/trial/calls"] != 3.0/700 || ratios["alice/trial/tokens"] != 3000.0/100000 || len(ratios) != 2 {
		t.Errorf("ratios %v: trial limits 700 calls and 100k tokens, enterprise unlimited", ratios)
	}
	if v, _ := gaugeValue(t, inst.reg, "usage_quota_period_start_timestamp_seconds"); v != 1761955200 {
		t.Errorf("period start %v, want 2025-11-01", v)
	}
	limits := quotaSeries(t, inst.reg, "usage_quota_limit")
	if limits["/trial/calls"] != 700 || limits["/professional/tokens"] != 50e6 || len(limits) != 6 {
		t.Errorf("limits %v", limits)
	}

	var nov, oct quotaResponse
	if code := getJSON(t, inst.url+"/api/v1/quotas?user=alice", &nov); code != 200 ||
		nov.Used["calls"] != 3 || nov.Tier != "trial" || nov.Period.ID != "2025-11-01" ||
		nov.Remaining["calls"] != float64(697) || nov.Limits["tokens"] != float64(100000) {
		t.Errorf("alice in November: %d %+v", code, nov)
	}
	if code := getJSON(t, inst.url+"/api/v1/quotas?user=alice&period=2025-10-01", &oct); code != 200 ||
		oct.Used["calls"] != 5 || oct.Used["tokens"] != 500 || oct.UsedPercent["calls"] != 0.7 {
		t.Errorf("alice in October: %d %+v", code, oct)
	}
	var bob quotaResponse
	if getJSON(t, inst.url+"/api/v1/quotas?user=bob", &bob); bob.Limits["calls"] != "unlimited" {
		t.Errorf("bob %+v", bob)
	}
	var e map[string]string
	if code := getJSON(t, inst.url+"/api/v1/quotas", &e); code != 400 || !strings.Contains(e["error"], "user parameter is required") {
		t.Errorf("no user: %d %v", code, e)
	}
	if code := getJSON(t, inst.url+"/api/v1/quotas?user=alice&period=2025-10-15", &e); code != 400 || !strings.Contains(e["error"], "first day") {
		t.Errorf("bad period: %d %v", code, e)
	}
}

// ledgerOf reads the shared ledger of a period straight from Redis.
func ledgerOf(t *testing.T, url, period string) map[string]quota.Usage {
	cfg := quota.DefaultRedisConfig()
	client, err := quota.NewClient(url, cfg.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	u, err := quota.NewRedis(client, cfg).Usage(context.Background(), period)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// ledgerLines writes n lines of users u00..u09 in November 2025, with
// tokens, and returns the expected ledger.
func ledgerLines(w io.Writer, from, n int, want map[string]quota.Usage) {
	for i := from; i < from+n; i++ {
		user := fmt.Sprintf("u%02d", i%10)
		tokens := 10 + i%7
		fmt.Fprintf(w, `{"timestamp":"2025-11-02T10:00:00Z","user_id":"%s","path":"/api/v1/llm/chat/completions","status":200,"model":"gpt-4o","input_tokens":%d,"output_tokens":0,"seq":%d}`+"\n",
			user, tokens, i)
		u := want[user]
		want[user] = quota.Usage{Calls: u.Calls + 1, Tokens: u.Tokens + int64(tokens)}
	}
}

func redisConfig(cfg *Config, url, instance string) *Config {
	cfg.Redis.URL = url
	cfg.Redis.Instance = instance
	cfg.Redis.FlushInterval = 50 * time.Millisecond
	cfg.Redis.Timeout = 500 * time.Millisecond
	return cfg
}

// Two exporters on two log files share one Redis ledger: the totals are exact.
func TestTwoExportersShareOneLedger(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	want := map[string]quota.Usage{}
	var a, b bytes.Buffer
	ledgerLines(&a, 0, 3000, want)
	ledgerLines(&b, 3000, 2000, want)
	os.WriteFile(filepath.Join(dir, "a.log"), a.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "b.log"), b.Bytes(), 0o644)
	ia := startInstance(t, redisConfig(fastConfig(filepath.Join(dir, "a.log")), srv.URL(), "gw-a"), filepath.Join(dir, "sa"), "")
	ib := startInstance(t, redisConfig(fastConfig(filepath.Join(dir, "b.log")), srv.URL(), "gw-b"), filepath.Join(dir, "sb"), "")
	waitFor(t, "both ledgers committed", func() bool {
		return fmt.Sprint(ledgerOf(t, srv.URL(), "2025-11-01")) == fmt.Sprint(want)
	})
	// Each exporter's quota series show the shared totals.
	waitFor(t, "shared totals in the series", func() bool {
		return quotaSeries(t, ia.reg, "usage_quota_used")["u03/unknown/calls"] == float64(want["u03"].Calls) &&
			quotaSeries(t, ib.reg, "usage_quota_used")["u03/unknown/calls"] == float64(want["u03"].Calls)
	})
	if up, _ := gaugeValue(t, ia.reg, "usage_exporter_redis_up"); up != 1 {
		t.Errorf("redis_up %v", up)
	}
}

// Redis goes away in the middle of ingestion and comes back: the ledger is
// exact at the end and redis_up went 0, then 1.
func TestRedisOutageLosesNothing(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	want := map[string]quota.Usage{}
	var buf bytes.Buffer
	ledgerLines(&buf, 0, 2000, want)
	os.WriteFile(logPath, buf.Bytes(), 0o644)
	inst := startInstance(t, redisConfig(fastConfig(logPath), srv.URL(), "gw"), filepath.Join(dir, "state"), "")
	waitFor(t, "first lines committed", func() bool { return fmt.Sprint(ledgerOf(t, srv.URL(), "2025-11-01")) == fmt.Sprint(want) })
	waitFor(t, "a scrape that read the shared ledger", func() bool {
		return quotaSeries(t, inst.reg, "usage_quota_used")["u01/unknown/calls"] == float64(want["u01"].Calls)
	})

	srv.Stop()
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	buf.Reset()
	ledgerLines(&buf, 2000, 3000, want)
	f.Write(buf.Bytes())
	f.Close()
	waitFor(t, "redis_up 0", func() bool { v, _ := gaugeValue(t, inst.reg, "usage_exporter_redis_up"); return v == 0 })
	waitFor(t, "lines read while Redis is down", func() bool { return linesParsed(t, inst.reg) == 5000 })
	// The series still show everything: the last read of Redis plus the held counts.
	waitFor(t, "series while Redis is down", func() bool {
		return quotaSeries(t, inst.reg, "usage_quota_used")["u01/unknown/calls"] == float64(want["u01"].Calls)
	})

	srv.Restart()
	waitFor(t, "redis_up 1", func() bool { v, _ := gaugeValue(t, inst.reg, "usage_exporter_redis_up"); return v == 1 })
	waitFor(t, "ledger exact", func() bool { return fmt.Sprint(ledgerOf(t, srv.URL(), "2025-11-01")) == fmt.Sprint(want) })
}

// A clean stop with Redis down keeps the held counts in the state file; the
// next run commits them.
func TestHeldCountsSurviveRestartWithRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	want := map[string]quota.Usage{}
	var buf bytes.Buffer
	ledgerLines(&buf, 0, 1000, want)
	os.WriteFile(logPath, buf.Bytes(), 0o644)
	cfg := redisConfig(fastConfig(logPath), srv.URL(), "gw")
	srv.Stop()
	inst := startInstance(t, cfg, filepath.Join(dir, "state"), "")
	waitFor(t, "lines read", func() bool { return linesParsed(t, inst.reg) == 1000 })
	if err := inst.stop(); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	inst2 := startInstance(t, cfg, filepath.Join(dir, "state"), "")
	waitFor(t, "held counts committed", func() bool { return fmt.Sprint(ledgerOf(t, srv.URL(), "2025-11-01")) == fmt.Sprint(want) })
	// The counters go on from the state file: 1000, not 2000.
	if p := linesParsed(t, inst2.reg); p != 1000 {
		t.Errorf("second run counts %v parsed lines, want the first run's 1000 (none read again)", p)
	}
}

func TestTiersFromRedis(t *testing.T) {
	srv := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	defer rc.Close()
	ctx := context.Background()
	rc.HSet(ctx, "user:alice", "tier", "professional")
	rc.Set(ctx, "session:s1", `{"user_id":"bob","tier":"starter"}`, 0)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	var buf bytes.Buffer
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		fmt.Fprintf(&buf, `{"user_id":"%s","path":"/api/v1/search","status":200}`+"\n", u)
	}
	// The line's own tier field comes first.
	fmt.Fprintf(&buf, `{"user_id":"alice","tier":"enterprise","path":"/api/v1/search","status":200}`+"\n")
	os.WriteFile(logPath, buf.Bytes(), 0o644)
	cfg := redisConfig(fastConfig(logPath), srv.URL(), "gw")
	cfg.Plans.Users = map[string]string{"carol": "trial"}
	inst := startInstance(t, cfg, filepath.Join(dir, "state"), "")
	waitFor(t, "lines", func() bool { return linesParsed(t, inst.reg) == 5 })
	// The first lines of a user may go by before Redis answers; append more.
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	defer f.Close()
	waitFor(t, "tiers from Redis", func() bool {
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			fmt.Fprintf(f, `{"user_id":"%s","path":"/api/v1/search","status":200}`+"\n", u)
		}
		time.Sleep(100 * time.Millisecond)
		got := sumCounter(t, inst.reg, "usage_user_requests_total", func(l map[string]string) string { return l["user"] + "/" + l["tier"] })
		return got["alice/professional"] > 0 && got["bob/starter"] > 0 && got["carol/trial"] > 0 && got["dave/unknown"] > 0 &&
			got["alice/enterprise"] == 1
	})
}
