package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/auth/authtest"
)

// A request walks through the real binary's guard: 401 without a token,
// 403 with a token that lacks the role, 200 for an admin, 429 when that
// admin is over the per-user limit. Tokens are signed by a test key that
// the issuer serves from its JWKS, found by discovery.
func TestAdminOnlyAPIProcess(t *testing.T) {
	iss := authtest.NewIssuer(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "optimizer.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`auth:
  oidc:
    issuer: %s
    audience: usage-api
  rate_limit:
    user: {per_minute: 100, burst: 20}
`, iss.URL)), 0o644)
	addr := freeAddr(t)
	exporter := freeAddr(t) // nothing listens: the source is down
	cmd := command("--web.listen-address", addr, "--config.file", cfg, "--exporter.url", "http://"+exporter+"/metrics",
		"--analysis.interval", "1h", "--prometheus.timeout", "2s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Tokens valid from 2020 to 2100: the test reads no clock.
	claims := func(user string, roles ...string) map[string]any {
		c := authtest.Claims(user, "usage-api", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), roles...)
		c["exp"] = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
		return c
	}
	admin := iss.Token(t, claims("ops-admin", "admin"))
	viewer := iss.Token(t, claims("viewer", "user"))

	type answer struct {
		code        int
		retryAfter  string
		reason, raw string
	}
	get := func(path, token string) answer {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r struct {
					Reason string `json:"reason"`
				}
				json.Unmarshal(body, &r)
				return answer{resp.StatusCode, resp.Header.Get("Retry-After"), r.Reason, string(body)}
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", path, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	const overview = "/api/v1/analytics/usage/overview"
	const compare = "/api/v1/analytics/usage/tools/compare-models?input_tokens=1000&output_tokens=500"

	if a := get(overview, ""); a.code != 401 || a.reason != "missing_token" {
		t.Fatalf("no token: %+v", a)
	}
	if a := get(overview, "eyJhbGciOiJub25lIn0.e30."); a.code != 401 || a.reason != "invalid_token" {
		t.Fatalf("unsigned token: %+v", a)
	}
	if a := get(overview, viewer); a.code != 403 || a.reason != "missing_role" {
		t.Fatalf("no role: %+v", a)
	}
	a := get(compare, admin)
	var cmp struct {
		Models []struct {
			Model string  `json:"model"`
			Cost  float64 `json:"cost"`
		} `json:"models"`
	}
	if a.code != 200 || json.Unmarshal([]byte(a.raw), &cmp) != nil || len(cmp.Models) == 0 {
		t.Fatalf("admin: %+v", a)
	}
	// The source is down: an admin passes the guard and gets a 503 that
	// names neither the source's address nor the dial error.
	if a := get(overview, admin); a.code != 503 || strings.Contains(a.raw, exporter) || strings.Contains(a.raw, "refused") {
		t.Fatalf("admin, source down: %+v", a)
	}
	// Two calls so far; the burst is 20: 18 more pass, then 429.
	for i := range 18 {
		if a := get(compare, admin); a.code != 200 {
			t.Fatalf("call %d: %+v", i+3, a)
		}
	}
	a = get(compare, admin)
	if a.code != 429 || a.reason != "rate_limited" || a.retryAfter == "" {
		t.Fatalf("21st call: %+v", a)
	}
	// Another user's bucket is its own (403 here, but not 429).
	if a := get(overview, viewer); a.code != 403 {
		t.Fatalf("the viewer after the admin's 429: %+v", a)
	}
}
