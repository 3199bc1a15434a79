// Package authtest is an OIDC issuer for tests: a discovery document and a
// JWKS served over httptest, and tokens signed with its keys by go-jose.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer serves /.well-known/openid-configuration and /certs.
type Issuer struct {
	*httptest.Server
	// KeyFetches counts requests for the JWKS.
	KeyFetches atomic.Int64

	mu   sync.Mutex
	keys []*rsa.PrivateKey
	kids []string
}

// NewIssuer starts an issuer with one RSA key; it stops with the test.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{}
	iss.Rotate(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"issuer": iss.URL, "jwks_uri": iss.URL + "/certs",
			"authorization_endpoint": iss.URL + "/auth", "token_endpoint": iss.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, r *http.Request) {
		iss.KeyFetches.Add(1)
		iss.mu.Lock()
		defer iss.mu.Unlock()
		var set jose.JSONWebKeySet
		for i, k := range iss.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: iss.kids[i], Algorithm: "RS256", Use: "sig"})
		}
		writeJSON(w, set)
	})
	iss.Server = httptest.NewServer(mux)
	t.Cleanup(iss.Close)
	return iss
}

// Rotate adds a new signing key; tokens are signed with the newest.
func (iss *Issuer) Rotate(t testing.TB) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = append(iss.keys, k)
	iss.kids = append(iss.kids, "key-"+string(rune('a'+len(iss.kids))))
}

// Token signs claims (iss is filled in unless set) with the newest key.
func (iss *Issuer) Token(t testing.TB, claims map[string]any) string {
	t.Helper()
	iss.mu.Lock()
	k, kid := iss.keys[len(iss.keys)-1], iss.kids[len(iss.kids)-1]
	iss.mu.Unlock()
	return Sign(t, k, kid, iss.URL, claims)
}

// Sign signs claims with key under kid; issuer fills iss when claims lack it.
func Sign(t testing.TB, key *rsa.PrivateKey, kid, issuer string, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]any{"iss": issuer}
	for k, v := range claims {
		c[k] = v
	}
	raw, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Claims are the claims of a Keycloak access token for user in realm roles,
// for audience aud, valid for an hour from now.
func Claims(user, aud string, now time.Time, roles ...string) map[string]any {
	return map[string]any{"sub": user, "aud": aud, "azp": aud, "preferred_username": user, "typ": "Bearer",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"realm_access": map[string]any{"roles": append([]string{"offline_access", "default-roles-usage"}, roles...)}}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
