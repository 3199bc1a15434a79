package exporter

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/keycloaktest"
	"github.com/usage-exporter/usage-exporter/plans"
)

// Tiers from Keycloak through the running exporter: a user's
// subscription_tier attribute gives the tier of their series and quota;
// a user without it takes the default tier.
func TestTiersFromKeycloak(t *testing.T) {
	kc := keycloaktest.New(t, 10)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "a.log")
	os.WriteFile(logPath, nil, 0o644)
	cfg := fastConfig(logPath)
	cfg.Quota.TierSources = []string{plans.SourceLog, plans.SourceKeycloak, plans.SourceConfig}
	cfg.Keycloak.URL, cfg.Keycloak.Realm = kc.URL, keycloaktest.Realm
	cfg.Keycloak.ClientID, cfg.Keycloak.ClientSecret = keycloaktest.ClientID, keycloaktest.ClientSecret
	tick := make(chan time.Time)
	inst := startInstance(t, cfg, filepath.Join(dir, "state"), "", func(o *Options) { o.KeycloakTick = tick })
	waitFor(t, "Keycloak read", func() bool { v, _ := gaugeValue(t, inst.reg, "usage_exporter_keycloak_up"); return v == 1 })
	if v, _ := gaugeValue(t, inst.reg, "usage_exporter_keycloak_users"); v != 9 {
		t.Errorf("keycloak_users %v, want 9 (user7 is disabled)", v)
	}

	line := func(user string) string {
		return `{"timestamp":"2025-11-15T11:00:00Z","user_id":"` + user + `","path":"/api/v1/search","status":200,"duration_ms":5}` + "\n"
	}
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	// By username, by email, and a user without the attribute.
	f.WriteString(line("user2") + line("user3@example.com") + line("user5"))
	f.Close()
	byUserTier := func() map[string]float64 {
		return sumCounter(t, inst.reg, "usage_user_requests_total", func(l map[string]string) string { return l["user"] + "/" + l["tier"] })
	}
	waitFor(t, "three lines", func() bool {
		n := 0.0
		for _, v := range byUserTier() {
			n += v
		}
		return n == 3
	})
	want := map[string]float64{"user2/professional": 1, "user3@example.com/enterprise": 1, "user5/" + cfg.Plans.DefaultTier: 1}
	if got := byUserTier(); len(got) != 3 || got["user2/professional"] != 1 || got["user3@example.com/enterprise"] != 1 ||
		got["user5/"+cfg.Plans.DefaultTier] != 1 {
		t.Errorf("tiers %v, want %v", got, want)
	}

	// Keycloak fails at the next refresh: keycloak_up 0, the tiers stay.
	kc.FailUsers.Store(true)
	tick <- time.Time{}
	waitFor(t, "keycloak_up 0", func() bool { v, _ := gaugeValue(t, inst.reg, "usage_exporter_keycloak_up"); return v == 0 })
}
