package plans

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/usage-exporter/usage-exporter/internal/keycloaktest"
)

func keycloakConfig(url string) KeycloakConfig {
	c := DefaultKeycloakConfig()
	c.URL, c.Realm, c.ClientID, c.ClientSecret, c.PageSize = url, "usage", "usage-exporter", "s3cret", 100
	return c
}

func TestKeycloakTiersAndNames(t *testing.T) {
	kc := keycloaktest.New(t, 250)
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
	if kc.Pages.Load() != 3 || kc.Tokens.Load() != 1 || kc.MaxSeen.Load() != 100 {
		t.Errorf("%d pages with %d tokens, max %d", kc.Pages.Load(), kc.Tokens.Load(), kc.MaxSeen.Load())
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
	kc.FailUsers.Store(true)
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
	kc := keycloaktest.New(t, 3)
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
