// Package keycloaktest is a Keycloak for tests: an httptest server that
// speaks the client-credentials token endpoint of realm "usage" and the
// admin API's users listing, with UserRepresentation-shaped JSON (as
// Keycloak 24 returns it with briefRepresentation=false).
package keycloaktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

// Client credentials the server accepts.
const (
	ClientID     = "usage-exporter"
	ClientSecret = "s3cret"
	Realm        = "usage"
)

// Tiers are given round-robin: user i has Tiers[i%4].
var Tiers = []string{"trial", "starter", "professional", "enterprise"}

// Server is the fake Keycloak; its counters say what was asked of it.
type Server struct {
	*httptest.Server
	Users     []map[string]any
	Tokens    atomic.Int64 // tokens issued
	Pages     atomic.Int64 // pages of users served
	FailUsers atomic.Bool  // answer the users listing with 401
	MaxSeen   atomic.Int64 // the last page size asked for
}

// New starts a Keycloak of n users (user i is "user<i>",
// user<i>@example.com, Tiers[i%4], api_calls_limit 1000*(i+1); user5 has no
// attributes, user7 is disabled); it stops with the test.
func New(t testing.TB, n int) *Server {
	kc := &Server{}
	for i := range n {
		u := map[string]any{
			"id": fmt.Sprintf("0b9d7c3e-0000-4000-8000-%012d", i), "username": fmt.Sprintf("user%d", i),
			"email": fmt.Sprintf("user%d@example.com", i), "emailVerified": true, "enabled": i != 7,
			"createdTimestamp": 1700000000000 + i, "totp": false, "disableableCredentialTypes": []string{},
			"requiredActions": []string{}, "notBefore": 0,
			"access":     map[string]bool{"manageGroupMembership": true, "view": true, "mapRoles": true, "impersonate": false, "manage": true},
			"attributes": map[string][]string{"subscription_tier": {Tiers[i%4]}, "api_calls_limit": {strconv.Itoa(1000 * (i + 1))}},
		}
		if i == 5 {
			delete(u, "attributes") // a user without attributes
		}
		kc.Users = append(kc.Users, u)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /realms/usage/protocol/openid-connect/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		r.ParseForm()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.PostForm.Get("grant_type") != "client_credentials" || id != ClientID || secret != ClientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"})
			return
		}
		kc.Tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "token-" + strconv.Itoa(int(kc.Tokens.Load())), "expires_in": 300,
			"refresh_expires_in": 0, "token_type": "Bearer", "not-before-policy": 0, "scope": "profile email"})
	})
	mux.HandleFunc("GET /admin/realms/usage/users", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" || kc.FailUsers.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "HTTP 401 Unauthorized"})
			return
		}
		kc.Pages.Add(1)
		first, _ := strconv.Atoi(r.URL.Query().Get("first"))
		max, _ := strconv.Atoi(r.URL.Query().Get("max"))
		kc.MaxSeen.Store(int64(max))
		page := []map[string]any{}
		for i := first; i < len(kc.Users) && i < first+max; i++ {
			page = append(page, kc.Users[i])
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(page)
	})
	kc.Server = httptest.NewServer(mux)
	t.Cleanup(kc.Close)
	return kc
}
