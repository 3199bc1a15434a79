package optimizer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/usage-exporter/usage-exporter/internal/keycloaktest"
	"github.com/usage-exporter/usage-exporter/plans"
)

// by-user's username comes from Keycloak (the httptest Keycloak) for the
// ids it knows, by id, username or email; other rows keep the id.
func TestUsernamesFromKeycloak(t *testing.T) {
	kc := keycloaktest.New(t, 10)
	c := plans.DefaultKeycloakConfig()
	c.URL, c.Realm, c.ClientID, c.ClientSecret = kc.URL, keycloaktest.Realm, keycloaktest.ClientID, keycloaktest.ClientSecret
	dir, err := plans.NewKeycloak(c, nil, "usage_optimizer", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := func() *Snapshot {
		s := week()
		s.user("user2@example.com", "professional").Calls = 50
		s.user("0b9d7c3e-0000-4000-8000-000000000003", "enterprise").Calls = 40
		return s
	}
	e := newTestEngine(t, &fixedSource{snap: snap})
	e.Directory = dir
	var rows []UserRow
	json.Unmarshal(get(t, &API{Engine: e}, APIPrefix+"by-user").Body.Bytes(), &rows)
	names := map[string]string{}
	for _, r := range rows {
		names[r.UserID] = r.Username
	}
	if names["user2@example.com"] != "user2" || names["0b9d7c3e-0000-4000-8000-000000000003"] != "user3" ||
		names["admin@example.com"] != "admin@example.com" {
		t.Errorf("usernames %v", names)
	}
}

// With the exporter's quota API guarded (auth.oidc), the exporter source
// reads the quota use from /metrics instead.
func TestExporterSourceQuotasBehindAGuard(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/quotas/users", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":"this API needs a bearer token","reason":"missing_token"}`, http.StatusUnauthorized)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("# TYPE usage_quota_used gauge\nusage_quota_used{resource=\"calls\",tier=\"starter\",user=\"alice\"} 42\n"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	src := &ExporterSource{URL: srv.URL + "/metrics"}
	qs, err := src.quotas(context.Background(), srv.Client(), now)
	if err != nil || len(qs) != 1 || qs[0].User != "alice" || qs[0].Calls != 42 {
		t.Fatalf("quotas behind a guard: %+v, %v", qs, err)
	}
}
