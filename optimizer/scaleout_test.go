package optimizer

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter"
	"github.com/usage-exporter/usage-exporter/internal/promtest"
	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

// Scale-out with real parts: two exporters (two gateway hosts, two logs)
// share one Redis ledger; one Prometheus scrapes both and remote-writes to
// a second (the remote-write receiver: the protocol Mimir and Thanos
// receive); the optimizer reads the second. Its figures are the sum of both
// logs, and each user's quota counts both hosts, exactly.
func TestScaleOutThroughRemoteWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two prometheus and redis")
	}
	rds := redistest.Start(t)
	dir := t.TempDir()
	const n = 1000
	var trs [2]traffic
	var addrs [2]string
	for i, host := range []string{"gateway-a", "gateway-b"} {
		path := filepath.Join(dir, host+".log")
		trs[i] = appendLines(t, path, n, time.Now())
		cfg := exporter.DefaultConfig()
		cfg.Logs.Sources = []exporter.SourceConfig{{Path: path, Config: cfg.Logs.Sources[0].Config}}
		cfg.Logs.Sources[0].Format = "json"
		cfg.Redis.URL, cfg.Redis.Instance = rds.URL(), host
		cfg.Redis.FlushInterval = 200 * time.Millisecond
		url, reg := startExporterWith(t, &cfg)
		addrs[i] = strings.TrimPrefix(url, "http://")
		eventually(t, host+" parsed", 30*time.Second, func() bool { return parsedLines(t, reg) == n })
	}
	var both traffic
	both.merge(trs[0])
	both.merge(trs[1])

	central := promtest.StartConfig(t, "global: {scrape_interval: 1s}\n", "", "--web.enable-remote-write-receiver")
	promtest.StartConfig(t, fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: usage-exporter
    static_configs: [{targets: [%q, %q]}]
remote_write:
  - url: %s/api/v1/write
    queue_config: {batch_send_deadline: 1s}
`, addrs[0], addrs[1], central.URL), "")
	central.WaitFor(t, fmt.Sprintf(`sum(usage_requests_total) == %d`, 2*n), time.Minute)
	central.WaitFor(t, `count(usage_quota_used) > 0`, time.Minute)

	optL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: &cfg, PrometheusURL: central.URL, PrometheusTimeout: 20 * time.Second,
			Days: 1, Interval: time.Second, CacheTTL: time.Second, MaxStale: time.Minute,
			Listeners: []net.Listener{optL}, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("optimizer: %v", err)
		}
	})
	base := "http://" + optL.Addr().String() + APIPrefix
	var o Overview
	eventually(t, "a report of both hosts", time.Minute, func() bool {
		getJSON(t, base+"overview?days=1", &o)
		return o.TotalAPICalls == both.total()
	})
	if math.Abs(o.TotalCost-money(both.cost)) > 1e-9 {
		t.Errorf("cost $%v, want $%.4f", o.TotalCost, both.cost)
	}
	for svc, c := range both.calls {
		if got := o.ByService[svc].Calls; got != c {
			t.Errorf("%s calls %v, want %v", svc, got, c)
		}
	}
	// Each user is on both hosts: the shared ledger counts both.
	var quotas map[string]TierQuota
	eventually(t, "quotas of both hosts", 30*time.Second, func() bool {
		getJSON(t, base+"quotas", &quotas)
		for user, tier := range both.userTier {
			if quotas[tier].Used != trs[0].users[user]+trs[1].users[user] {
				return false
			}
		}
		return true
	})
	var users []UserRow
	getJSON(t, base+"by-user?days=1&limit=10", &users)
	for _, u := range users {
		if want := trs[0].users[u.UserID] + trs[1].users[u.UserID]; u.TotalCalls != want {
			t.Errorf("%s: %v calls, want %v", u.UserID, u.TotalCalls, want)
		}
	}
}
