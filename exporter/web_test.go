package exporter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/usage-exporter/usage-exporter/internal/auth/authtest"
	"golang.org/x/crypto/bcrypt"
)

// writeWebConfig writes an exporter-toolkit web config with TLS (a fresh
// self-signed certificate) and one basic-auth user, when user is given.
func writeWebConfig(t *testing.T, dir, user, password string) (path string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "web.yml")
	conf := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", certFile, keyFile)
	if user != "" { // no user: TLS only
		conf += fmt.Sprintf("basic_auth_users:\n  %s: %s\n", user, hash)
	}
	os.WriteFile(path, []byte(conf), 0o644)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return path, pool
}

func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "a.log")
	os.WriteFile(logPath, nil, 0o644)
	webConfig, pool := writeWebConfig(t, dir, "prometheus", "s3cret")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: fastConfig(logPath), StateDir: filepath.Join(dir, "state"),
			Web: &web.FlagConfig{WebConfigFile: &webConfig}, Listeners: []net.Listener{l}, Logger: discardLogger()})
	}()
	defer func() { cancel(); <-done }()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + l.Addr().String() + "/metrics"
	get := func(user, password string) int {
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "TLS listener", func() bool { return get("prometheus", "s3cret") == 200 })
	if code := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
	if code := get("prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if resp, err := http.Get("http://" + l.Addr().String() + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served metrics on a TLS listener")
		}
	}
}

func TestBadWebConfigFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "web.yml")
	os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n"), 0o644)
	err := Run(context.Background(), Options{Config: fastConfig(filepath.Join(dir, "a.log")), StateDir: filepath.Join(dir, "state"),
		Web: &web.FlagConfig{WebConfigFile: &bad}, Listeners: []net.Listener{}, Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "web configuration "+bad) {
		t.Fatalf("Run with a bad web config: %v", err)
	}
}

// With auth.oidc the quota API wants an admin's bearer token, while
// /metrics stays under the web configuration (TLS here) for Prometheus;
// basic auth beside OIDC is refused at start.
func TestQuotaAPIWantsAnAdminToken(t *testing.T) {
	iss := authtest.NewIssuer(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "a.log")
	os.WriteFile(logPath, []byte(`{"timestamp":"2025-11-15T11:00:00Z","user_id":"u1","method":"POST","path":"/api/v1/search","status":200,"duration_ms":5,"size":10}`+"\n"), 0o644)
	webConfig, pool := writeWebConfig(t, dir, "", "")
	cfg := fastConfig(logPath)
	cfg.Auth.OIDC.Issuer, cfg.Auth.OIDC.Audience = iss.URL, "usage-api"
	cfg.Auth.RateLimit.AdminsBypass = true // the clock stands still: buckets would not refill while polling
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, StateDir: filepath.Join(dir, "state"), Now: testNow,
			Web: &web.FlagConfig{WebConfigFile: &webConfig}, Listeners: []net.Listener{l}, Logger: discardLogger(), AuthClient: iss.Client()})
	}()
	defer func() { cancel(); <-done }()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", "https://"+l.Addr().String()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return -1, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "TLS listener", func() bool { c, _ := get("/metrics", ""); return c == 200 })
	if c, body := get("/api/v1/quotas?user=u1", ""); c != 401 || !strings.Contains(body, "missing_token") {
		t.Errorf("no token: %d %s", c, body)
	}
	user := iss.Token(t, authtest.Claims("u1", "usage-api", testNow(), "user"))
	if c, body := get("/api/v1/quotas/users", user); c != 403 || !strings.Contains(body, "missing_role") {
		t.Errorf("a user's token: %d %s", c, body)
	}
	admin := iss.Token(t, authtest.Claims("ops", "usage-api", testNow(), "admin"))
	waitFor(t, "u1's line counted", func() bool {
		c, body := get("/api/v1/quotas?user=u1", admin)
		if c != 200 {
			t.Fatalf("an admin's token: %d %s", c, body)
		}
		return strings.Contains(body, `"used":{"calls":1,`)
	})

	// Basic auth and OIDC both want the Authorization header.
	withBasic, _ := writeWebConfig(t, t.TempDir(), "prometheus", "s3cret")
	err = Run(context.Background(), Options{Config: cfg, StateDir: filepath.Join(dir, "state2"),
		Web: &web.FlagConfig{WebConfigFile: &withBasic}, Listeners: []net.Listener{}, Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "basic_auth_users cannot be combined with auth.oidc") {
		t.Fatalf("basic auth with OIDC: %v", err)
	}
}
