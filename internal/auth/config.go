// Package auth guards the JSON APIs of usage-exporter and usage-optimizer:
// OIDC bearer tokens checked against the issuer's keys, a role that must be
// held, and rate limits per user, per organisation and per client address.
// /metrics is not guarded here: Prometheus scrapes it under the
// exporter-toolkit web configuration (TLS, basic auth) as before.
package auth

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// Config is the `auth` block of either process's configuration file.
type Config struct {
	// OIDC turns on bearer tokens; without an issuer the API is open (rate
	// limited per client address), as a deployment behind its own proxy wants.
	OIDC OIDCConfig `yaml:"oidc"`
	// RateLimit applies with or without OIDC.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
}

// OIDCConfig says which tokens are accepted.
type OIDCConfig struct {
	// Issuer is the token's iss, exactly (Keycloak: https://host/realms/NAME).
	Issuer string `yaml:"issuer"`
	// Audience must be among the token's aud (Keycloak: the client id, with
	// an audience mapper).
	Audience string `yaml:"audience"`
	// JWKSURL is where the signing keys are; empty discovers it from the
	// issuer's /.well-known/openid-configuration on first use.
	JWKSURL string `yaml:"jwks_url,omitempty"`
	// RoleClaim is the dotted path to a list of roles (Keycloak's realm roles
	// by default; resource_access.CLIENT.roles for client roles).
	RoleClaim string `yaml:"role_claim"`
	// Role must be in that list.
	Role string `yaml:"role"`
	// UserClaim names the caller for per-user limits and the log.
	UserClaim string `yaml:"user_claim"`
	// OrgClaim names the caller's organisation for per-organisation limits;
	// a token without it is limited per user only.
	OrgClaim string `yaml:"org_claim"`
	// Algorithms the signatures may use.
	Algorithms []string `yaml:"algorithms"`
	// DiscoveryTimeout bounds fetching the discovery document and keys.
	DiscoveryTimeout time.Duration `yaml:"discovery_timeout"`
}

// RateLimitConfig are token buckets: PerMinute refills a bucket of Burst.
type RateLimitConfig struct {
	User Bucket `yaml:"user"`
	Org  Bucket `yaml:"org"`
	// Address limits callers by client address when OIDC is off, and
	// callers without a valid token when it is on.
	Address Bucket `yaml:"address"`
	// AdminsBypass lets holders of the role through without a limit.
	AdminsBypass bool `yaml:"admins_bypass"`
}

// Bucket is one limit; PerMinute 0 turns it off.
type Bucket struct {
	PerMinute int `yaml:"per_minute"`
	Burst     int `yaml:"burst"`
}

// DefaultConfig holds the old API's limits: 100 a minute (burst 20) per
// user, 1,000 a minute per organisation, 100 a minute per address.
func DefaultConfig() Config {
	return Config{
		OIDC: OIDCConfig{RoleClaim: "realm_access.roles", Role: "admin", UserClaim: "sub", OrgClaim: "org_id",
			Algorithms: []string{"RS256", "ES256", "PS256"}, DiscoveryTimeout: 10 * time.Second},
		RateLimit: RateLimitConfig{
			User:    Bucket{PerMinute: 100, Burst: 20},
			Org:     Bucket{PerMinute: 1000, Burst: 100},
			Address: Bucket{PerMinute: 100, Burst: 100},
		},
	}
}

// Enabled reports whether tokens are required.
func (c *Config) Enabled() bool { return c.OIDC.Issuer != "" }

// Validate checks the block; paths are relative to it.
func (c *Config) Validate() error {
	o := &c.OIDC
	if o.Issuer != "" {
		if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fielderr.New("oidc.issuer", "must be an http(s) URL, not %q", o.Issuer)
		}
		if o.Audience == "" {
			return fielderr.New("oidc.audience", "is required with an issuer: the client id tokens are issued for")
		}
		if o.JWKSURL != "" {
			if u, err := url.Parse(o.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fielderr.New("oidc.jwks_url", "must be an http(s) URL, not %q", o.JWKSURL)
			}
		}
		if o.Role == "" {
			return fielderr.New("oidc.role", "is required with an issuer")
		}
		for _, p := range []struct{ name, v string }{{"role_claim", o.RoleClaim}, {"user_claim", o.UserClaim}} {
			if p.v == "" || strings.HasPrefix(p.v, ".") || strings.HasSuffix(p.v, ".") || strings.Contains(p.v, "..") {
				return fielderr.New("oidc."+p.name, "must be a dotted claim path, not %q", p.v)
			}
		}
		if len(o.Algorithms) == 0 {
			return fielderr.New("oidc.algorithms", "must name at least one signing algorithm")
		}
		for i, a := range o.Algorithms {
			if !allowedAlgorithms[a] {
				return fielderr.New("oidc.algorithms["+strconv.Itoa(i)+"]", "%q is not an asymmetric JWS algorithm (RS256, RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512, EdDSA)", a)
			}
		}
		if o.DiscoveryTimeout <= 0 {
			return fielderr.New("oidc.discovery_timeout", "must be positive")
		}
	}
	for _, b := range []struct {
		name string
		b    Bucket
	}{{"user", c.RateLimit.User}, {"org", c.RateLimit.Org}, {"address", c.RateLimit.Address}} {
		if b.b.PerMinute < 0 || b.b.Burst < 0 {
			return fielderr.New("rate_limit."+b.name, "per_minute and burst must not be negative")
		}
		if b.b.PerMinute > 0 && b.b.Burst == 0 {
			return fielderr.New("rate_limit."+b.name+".burst", "must be at least 1 when per_minute is set")
		}
	}
	return nil
}

// Symmetric algorithms are refused: a shared secret would let anyone who
// can read this configuration mint admin tokens.
var allowedAlgorithms = map[string]bool{"RS256": true, "RS384": true, "RS512": true, "ES256": true, "ES384": true,
	"ES512": true, "PS256": true, "PS384": true, "PS512": true, "EdDSA": true}
