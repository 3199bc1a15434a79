package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/auth"
	"github.com/usage-exporter/usage-exporter/internal/auth/authtest"
)

// clock is a settable time for the buckets and token expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock                   { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })

type answer struct {
	code  int
	body  auth.Refusal
	raw   string
	retry string
	www   string
}

func call(t *testing.T, h http.Handler, token, addr string) answer {
	t.Helper()
	r := httptest.NewRequest("GET", "/api/v1/analytics/usage/overview", nil)
	r.RemoteAddr = addr + ":40000"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{code: w.Code, raw: w.Body.String(), retry: w.Header().Get("Retry-After"), www: w.Header().Get("WWW-Authenticate")}
	if w.Code != 200 {
		if err := json.Unmarshal(w.Body.Bytes(), &a.body); err != nil {
			t.Fatalf("refusal %d is not JSON: %q", w.Code, w.Body.String())
		}
	}
	return a
}

func guardOf(t *testing.T, iss *authtest.Issuer, clk *clock, edit func(*auth.Config)) http.Handler {
	t.Helper()
	c := auth.DefaultConfig()
	c.OIDC.Issuer, c.OIDC.Audience = iss.URL, "usage-api"
	if edit != nil {
		edit(&c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return auth.NewGuard(c, iss.Client(), clk.Now, nil).Wrap(ok)
}

func TestTokensRolesAndTheirRefusals(t *testing.T) {
	iss := authtest.NewIssuer(t)
	clk := newClock()
	h := guardOf(t, iss, clk, nil)
	now := clk.Now()

	a := call(t, h, "", "10.0.0.1")
	if a.code != 401 || a.body.Reason != "missing_token" || !strings.HasPrefix(a.www, "Bearer") {
		t.Fatalf("no token: %d %+v %q", a.code, a.body, a.www)
	}
	a = call(t, h, "not.a.jwt", "10.0.0.1")
	if a.code != 401 || a.body.Reason != "invalid_token" {
		t.Fatalf("garbage: %d %+v", a.code, a.body)
	}

	cases := []struct {
		name   string
		claims map[string]any
		say    string
	}{
		{"expired", func() map[string]any {
			c := authtest.Claims("alice", "usage-api", now.Add(-2*time.Hour), "admin")
			return c
		}(), "it has expired"},
		{"other audience", authtest.Claims("alice", "another-client", now, "admin"), "another audience"},
		{"other issuer", func() map[string]any {
			c := authtest.Claims("alice", "usage-api", now, "admin")
			c["iss"] = "https://elsewhere.example/realms/x"
			return c
		}(), "another issuer"},
	}
	for _, tc := range cases {
		a := call(t, h, iss.Token(t, tc.claims), "10.0.0.1")
		if a.code != 401 || a.body.Reason != "invalid_token" || !strings.Contains(a.body.Error, tc.say) {
			t.Errorf("%s: %d %+v", tc.name, a.code, a.body)
		}
		if strings.Contains(a.raw, iss.URL) || strings.Contains(a.raw, "127.0.0.1") {
			t.Errorf("%s: the body names an internal address: %s", tc.name, a.raw)
		}
	}

	// A key the issuer never published: the key set is fetched again for the
	// unknown kid, then the token is refused.
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	before := iss.KeyFetches.Load()
	a = call(t, h, authtest.Sign(t, stranger, "key-z", iss.URL, authtest.Claims("mallory", "usage-api", now, "admin")), "10.0.0.1")
	if a.code != 401 || !strings.Contains(a.body.Error, "signature") {
		t.Fatalf("foreign key: %d %+v", a.code, a.body)
	}
	if iss.KeyFetches.Load() != before+1 {
		t.Errorf("an unknown kid should fetch the keys once, fetched %d times", iss.KeyFetches.Load()-before)
	}

	a = call(t, h, iss.Token(t, authtest.Claims("bob", "usage-api", now, "user")), "10.0.0.2")
	if a.code != 403 || a.body.Reason != "missing_role" || !strings.Contains(a.body.Error, `"admin"`) ||
		!strings.Contains(a.body.Error, "realm_access.roles") {
		t.Fatalf("no role: %d %+v", a.code, a.body)
	}
	a = call(t, h, iss.Token(t, authtest.Claims("carol", "usage-api", now, "admin")), "10.0.0.3")
	if a.code != 200 || a.raw != "ok" {
		t.Fatalf("admin: %d %q", a.code, a.raw)
	}

	// Keys are cached: a second token of a known key fetches nothing; a
	// rotated key is fetched once and then accepted.
	fetches := iss.KeyFetches.Load()
	call(t, h, iss.Token(t, authtest.Claims("carol", "usage-api", now, "admin")), "10.0.0.3")
	if iss.KeyFetches.Load() != fetches {
		t.Errorf("a known key id refetched the keys")
	}
	iss.Rotate(t)
	if a := call(t, h, iss.Token(t, authtest.Claims("carol", "usage-api", now, "admin")), "10.0.0.3"); a.code != 200 {
		t.Fatalf("rotated key: %d %+v", a.code, a.body)
	}
	if iss.KeyFetches.Load() != fetches+1 {
		t.Errorf("a rotated key: %d fetches, want 1", iss.KeyFetches.Load()-fetches)
	}
}

func TestRoleClaimIsConfigurable(t *testing.T) {
	iss := authtest.NewIssuer(t)
	clk := newClock()
	h := guardOf(t, iss, clk, func(c *auth.Config) {
		c.OIDC.RoleClaim, c.OIDC.Role = "resource_access.usage-api.roles", "usage-admin"
	})
	claims := authtest.Claims("dave", "usage-api", clk.Now(), "admin")
	if a := call(t, h, iss.Token(t, claims), "10.0.0.1"); a.code != 403 {
		t.Fatalf("a realm role should not count for a client role claim: %d", a.code)
	}
	claims["resource_access"] = map[string]any{"usage-api": map[string]any{"roles": []string{"usage-admin"}}}
	if a := call(t, h, iss.Token(t, claims), "10.0.0.1"); a.code != 200 {
		t.Fatalf("client role: %d %+v", a.code, a.body)
	}
}

func TestRateLimitsPerUserOrgAndAddress(t *testing.T) {
	iss := authtest.NewIssuer(t)
	clk := newClock()
	h := guardOf(t, iss, clk, func(c *auth.Config) { c.RateLimit.Org = auth.Bucket{PerMinute: 1000, Burst: 30} })
	now := clk.Now()
	erin := iss.Token(t, authtest.Claims("erin", "usage-api", now, "admin"))

	// 100 a minute in bursts of 20: the 21st call at one instant is refused
	// with the wait for one token, 0.6 s, rounded up to a second.
	for i := range 20 {
		if a := call(t, h, erin, "10.0.0.1"); a.code != 200 {
			t.Fatalf("call %d: %d %+v", i+1, a.code, a.body)
		}
	}
	a := call(t, h, erin, "10.0.0.1")
	if a.code != 429 || a.retry != "1" || a.body.Limit != "user" || a.body.RetryAfterSeconds != 1 {
		t.Fatalf("21st call: %d retry %q %+v", a.code, a.retry, a.body)
	}
	// Another user is not limited by erin's calls.
	frank := iss.Token(t, authtest.Claims("frank", "usage-api", now, "admin"))
	if a := call(t, h, frank, "10.0.0.1"); a.code != 200 {
		t.Fatalf("frank: %d", a.code)
	}
	clk.Advance(600 * time.Millisecond)
	if a := call(t, h, erin, "10.0.0.1"); a.code != 200 {
		t.Fatalf("after 0.6 s one token is back: %d", a.code)
	}
	if a := call(t, h, erin, "10.0.0.1"); a.code != 429 {
		t.Fatalf("and only one: %d", a.code)
	}

	// An organisation's users share its bucket (burst 30 here): 15 users of
	// org acme, 2 calls each, then the 31st call is refused as "org".
	clk.Advance(time.Hour)
	for i := range 15 {
		c := authtest.Claims(fmt.Sprintf("acme-%d", i), "usage-api", clk.Now(), "admin")
		c["org_id"] = "acme"
		tok := iss.Token(t, c)
		for range 2 {
			if a := call(t, h, tok, "10.0.0.5"); a.code != 200 {
				t.Fatalf("acme user %d: %d %+v", i, a.code, a.body)
			}
		}
	}
	c := authtest.Claims("acme-99", "usage-api", clk.Now(), "admin")
	c["org_id"] = "acme"
	if a := call(t, h, iss.Token(t, c), "10.0.0.5"); a.code != 429 || a.body.Limit != "org" {
		t.Fatalf("31st call of acme: %d %+v", a.code, a.body)
	}

	// Without a valid token, the address's bucket (100, burst 100) applies.
	clk.Advance(time.Hour)
	for range 100 {
		call(t, h, "", "10.9.9.9")
	}
	if a := call(t, h, "", "10.9.9.9"); a.code != 429 || a.body.Limit != "address" {
		t.Fatalf("101st anonymous call: %d %+v", a.code, a.body)
	}
	if a := call(t, h, "", "10.9.9.8"); a.code != 401 {
		t.Fatalf("another address: %d", a.code)
	}
}

func TestAdminsMayBypassTheLimits(t *testing.T) {
	iss := authtest.NewIssuer(t)
	clk := newClock()
	h := guardOf(t, iss, clk, func(c *auth.Config) { c.RateLimit.AdminsBypass = true })
	tok := iss.Token(t, authtest.Claims("grace", "usage-api", clk.Now(), "admin"))
	for i := range 200 {
		if a := call(t, h, tok, "10.0.0.1"); a.code != 200 {
			t.Fatalf("call %d of an admin with the bypass: %d", i+1, a.code)
		}
	}
}

func TestWithoutOIDCTheAddressIsLimited(t *testing.T) {
	clk := newClock()
	c := auth.DefaultConfig()
	c.RateLimit.Address = auth.Bucket{PerMinute: 60, Burst: 5}
	h := auth.NewGuard(c, nil, clk.Now, nil).Wrap(ok)
	for range 5 {
		if a := call(t, h, "", "192.0.2.1"); a.code != 200 {
			t.Fatalf("open API: %d", a.code)
		}
	}
	if a := call(t, h, "", "192.0.2.1"); a.code != 429 || a.retry != "1" {
		t.Fatalf("6th: %d %q", a.code, a.retry)
	}
}

func TestDiscoveryAndAnUnreachableIssuer(t *testing.T) {
	iss := authtest.NewIssuer(t)
	clk := newClock()
	// No jwks_url: discovered from the issuer's well-known document.
	h := guardOf(t, iss, clk, nil)
	if a := call(t, h, iss.Token(t, authtest.Claims("heidi", "usage-api", clk.Now(), "admin")), "10.0.0.1"); a.code != 200 {
		t.Fatalf("discovered keys: %d %+v", a.code, a.body)
	}

	// An issuer that is down: 503, and the body names no address.
	down := authtest.NewIssuer(t)
	tok := down.Token(t, authtest.Claims("heidi", "usage-api", clk.Now(), "admin"))
	url := down.URL
	down.Close()
	c := auth.DefaultConfig()
	c.OIDC.Issuer, c.OIDC.Audience, c.OIDC.DiscoveryTimeout = url, "usage-api", 2*time.Second
	g := auth.NewGuard(c, nil, clk.Now, nil).Wrap(ok)
	a := call(t, g, tok, "10.0.0.1")
	if a.code != 503 || a.body.Reason != "identity_provider_unavailable" || a.retry == "" {
		t.Fatalf("issuer down: %d %+v", a.code, a.body)
	}
	if strings.Contains(a.raw, url) || strings.Contains(a.raw, "127.0.0.1") || strings.Contains(a.raw, "refused") {
		t.Fatalf("the body carries internal detail: %s", a.raw)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		edit  func(*auth.Config)
		field string
	}{
		{func(c *auth.Config) { c.OIDC.Issuer = "keycloak" }, "oidc.issuer"},
		{func(c *auth.Config) { c.OIDC.Issuer = "https://kc/realms/a" }, "oidc.audience"},
		{func(c *auth.Config) {
			c.OIDC.Issuer, c.OIDC.Audience, c.OIDC.Algorithms = "https://kc/realms/a", "x", []string{"HS256"}
		}, "oidc.algorithms[0]"},
		{func(c *auth.Config) {
			c.OIDC.Issuer, c.OIDC.Audience, c.OIDC.RoleClaim = "https://kc/realms/a", "x", "realm_access."
		}, "oidc.role_claim"},
		{func(c *auth.Config) { c.RateLimit.User.Burst = 0 }, "rate_limit.user.burst"},
		{func(c *auth.Config) { c.RateLimit.Org.PerMinute = -1 }, "rate_limit.org"},
	} {
		c := auth.DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("want an error about %s, got %v", tc.field, err)
		}
	}
}

func TestIdleKeysAreForgotten(t *testing.T) {
	clk := newClock()
	l := auth.NewLimiter(auth.Bucket{PerMinute: 100, Burst: 20}, clk.Now)
	for i := range 1000 {
		l.Allow(fmt.Sprint("10.1.", i/256, ".", i%256))
	}
	clk.Advance(2 * time.Minute)
	l.Allow("10.2.0.1")
	if l.Len() != 1 {
		t.Fatalf("%d keys remembered after two idle minutes, want 1", l.Len())
	}
}
