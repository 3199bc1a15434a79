package optimizer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter"
	"github.com/usage-exporter/usage-exporter/internal/promtest"
)

// __other__ and __anonymous__ are not users: with two labels for fourteen
// users, the folded twelve (whose sum is far over the trial allowance) and
// the anonymous calls give no recommendation, no quota figure, no user row,
// and the user count is every user's, fourteen.
func TestFoldedLabelsAreNotUsers(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "gateway.log")
	var b bytes.Buffer
	line := func(user string, n int) {
		for i := range n {
			fmt.Fprintf(&b, `{"timestamp":"2025-11-10T%02d:%02d:%02dZ","user_id":"%s","tier":"trial","path":"/api/v1/llm/chat/completions","status":200,"model":"gpt-4o","input_tokens":50,"output_tokens":5,"duration_ms":100}`+"\n",
				8+i/3600, i/60%60, i%60, user)
		}
	}
	line("heavy-1", 900) // over trial's 700 calls: a plan upgrade
	line("heavy-2", 800)
	for i := range 12 {
		line(fmt.Sprintf("light-%02d", i), 100) // 1,200 under __other__
	}
	line("", 500) // anonymous
	if err := os.WriteFile(logPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := exporter.DefaultConfig()
	cfg.Logs.Sources = []exporter.SourceConfig{{Path: logPath}}
	cfg.Logs.Start, cfg.Logs.CheckpointInterval = "beginning", 100*time.Millisecond
	cfg.Users.MaxUsers = 2
	now := time.Date(2025, 11, 15, 12, 0, 0, 0, time.UTC)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- exporter.Run(ctx, exporter.Options{Config: &cfg, StateDir: t.TempDir(), TelemetryPath: "/metrics",
			Listeners: []net.Listener{l}, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("exporter: %v", err)
		}
	})
	url := "http://" + l.Addr().String()
	reg := promtest.Exposition{URL: url + "/metrics"}
	eventually(t, "every line", 30*time.Second, func() bool { return parsedLines(t, reg) == 3400 })

	src := &ExporterSource{URL: url + "/metrics"}
	var s *Snapshot
	eventually(t, "the window and the quotas", 10*time.Second, func() bool {
		s, err = src.Snapshot(context.Background(), 7, now)
		return err == nil && s.TotalCalls() == 3400 && len(s.Quotas) == 2
	})
	settings := mustSettings(t)
	res := Recommend(s, settings.Prices, settings.Config.Plans, *settings.Config, now)
	report := NewReport(s, res, settings.Config.Plans, now)
	out, err := json.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, folded := range []string{OtherUser, AnonymousUser} {
		if strings.Contains(string(out), folded) {
			t.Errorf("the report names %s:\n%s", folded, out)
		}
	}
	upgrades := find(res, TypePlanUpgrade)
	if len(upgrades) != 1 || upgrades[0].Savings != 2*19 || fmt.Sprint(upgrades[0].Evidence["users"]) != "[heavy-1 heavy-2]" {
		t.Errorf("plan upgrades %+v: want one, for the two labelled trial users over their allowance", upgrades)
	}
	if report.Overview.ByUserCount != 14 {
		t.Errorf("by_user_count %d, want 14 (two labelled, twelve folded)", report.Overview.ByUserCount)
	}
	if report.Overview.OtherCalls != 1200 || report.Overview.AnonymousCalls != 500 {
		t.Errorf("other users' calls %v (want 1200), anonymous %v (want 500)", report.Overview.OtherCalls, report.Overview.AnonymousCalls)
	}
	if len(report.Users) != 2 {
		t.Errorf("%d user rows, want the 2 labelled users", len(report.Users))
	}
	if got := report.Services[0].UniqueUsers; got != 14 {
		t.Errorf("llm has %d unique users, want 14", got)
	}
}
