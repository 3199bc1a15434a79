package exporter

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Forget on an embedded ledger (the state file), under the hashed label
// policy: the ledger entry, the tracked user, the series and the rollups'
// name go; another user's stay; the deny list holds a hash, not the id.
func TestForgetEmbeddedHashed(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "a.log")
	line := func(user string) string {
		return `{"timestamp":"2025-11-15T11:00:00Z","user_id":"` + user + `","method":"POST","path":"/api/v1/search","status":200,"duration_ms":5,"size":10}` + "\n"
	}
	os.WriteFile(logPath, []byte(line("carol@example.com")+line("carol@example.com")+line("dave@example.com")), 0o644)
	cfg := fastConfig(logPath)
	cfg.Users.Label, cfg.Users.HashKey = UserLabelHashed, "k"
	stateDir := filepath.Join(dir, "state")
	carol, dave := storedIDOf(cfg.Users, "carol@example.com"), storedIDOf(cfg.Users, "dave@example.com")

	inst := startInstance(t, cfg, stateDir, "")
	waitFor(t, "both users in the state file", func() bool {
		cp, err := ReadState(stateDir)
		return err == nil && cp.Ledger != nil && cp.Ledger.Get("2025-11-01", carol).Calls == 2 && cp.Ledger.Get("2025-11-01", dave).Calls == 1
	})
	if err := inst.stop(); err != nil {
		t.Fatal(err)
	}

	rep, err := Forget(context.Background(), cfg, stateDir, "carol@example.com", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if rep.StoredID != carol || rep.Label != carol || rep.LedgerEntries != 1 || !rep.TrackedUser || rep.Series != 2 || rep.RedisFields != 0 {
		t.Errorf("report: %+v (carol is %s)", rep, carol)
	}
	cp, err := ReadState(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Ledger.Get("2025-11-01", carol).Calls != 0 || cp.Ledger.Get("2025-11-01", dave).Calls != 1 {
		t.Errorf("ledger after forget: carol %+v, dave %+v", cp.Ledger.Get("2025-11-01", carol), cp.Ledger.Get("2025-11-01", dave))
	}
	data, _ := os.ReadFile(filepath.Join(stateDir, stateFile))
	if strings.Contains(string(data), carol) || !strings.Contains(string(data), dave) {
		t.Errorf("the state file: carol's hash present %v, dave's %v", strings.Contains(string(data), carol), strings.Contains(string(data), dave))
	}
	deny, _ := os.ReadFile(filepath.Join(stateDir, deniedFile))
	if strings.Contains(string(deny), "carol") || !strings.Contains(string(deny), `"sha256":["`) {
		t.Errorf("deny list: %s", deny)
	}
	// An empty id is refused.
	if _, err := Forget(context.Background(), cfg, stateDir, "", testNow); err == nil {
		t.Error("an empty id was accepted")
	}
}
