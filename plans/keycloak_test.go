package plans

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeKeycloak speaks Keycloak's client-credentials token endpoint and the
// admin API's users listing, with UserRepresentation-shaped JSON (as
// Keycloak 24 returns with briefRepresentation=false).
type fakeKeycloak struct {
	*httptest.Server
	users     []map[string]any
	tokens    atomic.Int64
	pages     atomic.Int64
	failUsers atomic.Bool
	maxSeen   atomic.Int64
}

func newFakeKeycloak(t *testing.T, n int) *fakeKeycloak {
	kc := &fakeKeycloak{}
	tiers := []string{"trial", "starter", "professional", "enterprise"}
	for i := range n {
		u := map[string]any{
			"id": fmt.Sprintf("0b9d7c3e-0000-4000-8000-%012d", i), "username": fmt.Sprintf("user%d", i),
			"email": fmt.Sprintf("user%d@example.com", i), "emailVerified": true, "enabled": i != 7,
			"createdTimestamp": 1700000000000 + i, "totp": false, "disableableCredentialTypes": []string{},
			"requiredActions": []string{}, "notBefore": 0,
			"access":     map[string]bool{"manageGroupMembership": true, "view": true, "mapRoles": true, "impersonate": false, "manage": true},
			"attributes": map[string][]string{"subscription_tier": {tiers[i%4]}, "api_calls_limit": {strconv.Itoa(1000 * (i + 1))}},
		}
		if i == 5 {
			delete(u, "attributes") // a user without attributes
		}
		kc.users = append(kc.users, u)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /realms/usage/protocol/openid-connect/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		r.ParseForm()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.PostForm.Get("grant_type") != "client_credentials" || id != "usage-exporter" || secret != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"})
			return
		}
		kc.tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "token-" + strconv.Itoa(int(kc.tokens.Load())), "expires_in": 300,
			"refresh_expires_in": 0, "token_type": "Bearer", "not-before-policy": 0, "scope": "profile email"})
	})
	mux.HandleFunc("GET /admin/realms/usage/users", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" || kc.failUsers.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "HTTP 401 Unauthorized"})
			return
		}
		kc.pages.Add(1)
		first, _ := strconv.Atoi(r.URL.Query().Get("first"))
		max, _ := strconv.Atoi(r.URL.Query().Get("max"))
		kc.maxSeen.Store(int64(max))
		page := []map[string]any{}
		for i := first; i < len(kc.users) && i < first+max; i++ {
			page = append(page, kc.users[i])
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(page)
	})
	kc.Server = httptest.NewServer(mux)
	t.Cleanup(kc.Close)
	return kc
}

func keycloakConfig(url string) KeycloakConfig {
	c := DefaultKeycloakConfig()
	c.URL, c.Realm, c.ClientID, c.ClientSecret, c.PageSize = url, "usage", "usage-exporter", "s3cret", 100
	return c
}

func TestKeycloakTiersAndNames(t *testing.T) {
	kc := newFakeKeycloak(t, 250)
	c := keycloakConfig(kc.URL)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	k, err := NewKeycloak(c, nil, "usage_exporter", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 250 users in pages of 100: three pages, one token.
	if kc.pages.Load() != 3 || kc.tokens.Load() != 1 || kc.maxSeen.Load() != 100 {
		t.Errorf("%d pages with %d tokens, max %d", kc.pages.Load(), kc.tokens.Load(), kc.maxSeen.Load())
	}
	if got := testutil.ToFloat64(k.count); got != 249 { // user7 is disabled
		t.Errorf("users: %v", got)
	}
	for _, key := range []string{"0b9d7c3e-0000-4000-8000-000000000002", "user2", "user2@example.com"} {
		if tier, ok := k.Tier([]byte(key)); !ok || tier != "professional" {
			t.Errorf("tier of %s: %q %v", key, tier, ok)
		}
	}
	if u, ok := k.User("user10"); !ok || u.Username != "user10" || u.Email != "user10@example.com" || u.CallsLimit != 11000 || u.Tier != "professional" {
		t.Errorf("user10: %+v", u)
	}
	if _, ok := k.Tier([]byte("user5")); ok {
		t.Error("a user without the attribute has a tier")
	}
	if _, ok := k.Tier([]byte("user7")); ok {
		t.Error("a disabled user has a tier")
	}
	if u, ok := k.User("user249"); !ok || u.Tier != "starter" {
		t.Errorf("the last page: %+v", u)
	}

	// Keycloak fails: the directory stays, keycloak_up is 0.
	kc.failUsers.Store(true)
	if err := k.Refresh(context.Background()); err == nil {
		t.Fatal("a failed refresh reported no error")
	}
	if testutil.ToFloat64(k.up) != 0 {
		t.Error("keycloak_up after a failure")
	}
	if tier, ok := k.Tier([]byte("user2")); !ok || tier != "professional" {
		t.Error("the last good directory was dropped")
	}

	// Through the resolver, Keycloak's tier comes after the line's and
	// before the configuration's.
	r := NewResolver(DefaultConfig(), []string{SourceLog, SourceKeycloak, SourceConfig}, map[string]Lookup{SourceKeycloak: k})
	if got := r.Names()[r.Resolve([]byte("user3"), nil)]; got != "enterprise" {
		t.Errorf("user3 resolves to %s", got)
	}
	if got := r.Names()[r.Resolve([]byte("user3"), []byte("starter"))]; got != "starter" {
		t.Errorf("the line's tier first: %s", got)
	}
}

func TestKeycloakBadCredentials(t *testing.T) {
	kc := newFakeKeycloak(t, 3)
	c := keycloakConfig(kc.URL)
	c.ClientSecret = "wrong"
	k, _ := NewKeycloak(c, nil, "usage_exporter", nil)
	if err := k.Refresh(context.Background()); err == nil || testutil.ToFloat64(k.up) != 0 {
		t.Fatalf("wrong secret: %v, up %v", err, testutil.ToFloat64(k.up))
	}
	if _, ok := k.Tier([]byte("user1")); ok {
		t.Error("a tier without a directory")
	}
}

func TestKeycloakConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		edit  func(*KeycloakConfig)
		field string
	}{
		{func(c *KeycloakConfig) { c.URL = "keycloak:8080" }, "url"},
		{func(c *KeycloakConfig) { c.Realm = "" }, "realm"},
		{func(c *KeycloakConfig) { c.ClientSecretFile = "/run/secret" }, "client_secret"},
		{func(c *KeycloakConfig) { c.PageSize = 5000 }, "page_size"},
	} {
		c := keycloakConfig("https://kc.example")
		tc.edit(&c)
		if err := c.Validate(); err == nil || err.Error()[:len(tc.field)+1] != tc.field+":" {
			t.Errorf("want an error about %s, got %v", tc.field, err)
		}
	}
}
