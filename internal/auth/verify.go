package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Principal is who a valid token names.
type Principal struct {
	User  string
	Org   string
	Admin bool // holds the configured role
}

// ErrNoToken is a request without a bearer token.
var ErrNoToken = errors.New("no bearer token")

// errKeys is a failure to reach the issuer's keys: the caller's token may be
// fine, so it is a 503, not a 401.
type errKeys struct{ err error }

func (e *errKeys) Error() string { return "identity provider unavailable: " + e.err.Error() }
func (e *errKeys) Unwrap() error { return e.err }

// Verifier checks bearer tokens with go-oidc: signature against the JWKS
// (cached, refetched when a token names an unknown key id), issuer,
// audience, expiry, algorithm.
type Verifier struct {
	cfg    OIDCConfig
	client *http.Client
	now    func() time.Time

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

// NewVerifier returns a verifier of c; client (nil: http.DefaultClient)
// reaches the issuer, now (nil: time.Now) checks expiry.
func NewVerifier(c OIDCConfig, client *http.Client, now func() time.Time) *Verifier {
	if client == nil {
		client = http.DefaultClient
	}
	return &Verifier{cfg: c, client: client, now: now}
}

// idTokenVerifier builds the go-oidc verifier once; discovery, when no JWKS
// URL is configured, is retried on the next request after a failure.
func (v *Verifier) idTokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	// The key set keeps this context for its later fetches: it must not be the request's.
	keyCtx := oidc.ClientContext(context.Background(), v.client)
	oc := &oidc.Config{ClientID: v.cfg.Audience, SupportedSigningAlgs: v.cfg.Algorithms, Now: v.now}
	if v.cfg.JWKSURL != "" {
		v.verifier = oidc.NewVerifier(v.cfg.Issuer, oidc.NewRemoteKeySet(keyCtx, v.cfg.JWKSURL), oc)
		return v.verifier, nil
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, v.client), v.cfg.DiscoveryTimeout)
	defer cancel()
	p, err := oidc.NewProvider(dctx, v.cfg.Issuer)
	if err != nil {
		return nil, &errKeys{err}
	}
	v.verifier = p.VerifierContext(keyCtx, oc)
	return v.verifier, nil
}

// Verify checks the request's bearer token and reads its principal.
func (v *Verifier) Verify(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return Principal{}, ErrNoToken
	}
	iv, err := v.idTokenVerifier(r.Context())
	if err != nil {
		return Principal{}, err
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), v.client), v.cfg.DiscoveryTimeout)
	defer cancel()
	tok, err := iv.Verify(ctx, strings.TrimSpace(raw))
	if err != nil {
		if isKeyFetchError(err) {
			return Principal{}, &errKeys{err}
		}
		return Principal{}, err
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, err
	}
	p := Principal{User: claimString(claims, v.cfg.UserClaim), Org: claimString(claims, v.cfg.OrgClaim)}
	if p.User == "" {
		p.User = tok.Subject
	}
	p.Admin = slices.Contains(claimStrings(claims, v.cfg.RoleClaim), v.cfg.Role)
	return p, nil
}

// isKeyFetchError tells go-oidc's "could not fetch the keys" from a bad token.
func isKeyFetchError(err error) bool {
	return strings.Contains(err.Error(), "fetching keys")
}

// claim walks a dotted path through nested objects.
func claim(claims map[string]any, path string) any {
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

func claimString(claims map[string]any, path string) string {
	if path == "" {
		return ""
	}
	switch v := claim(claims, path).(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// claimStrings reads a list of strings, or one string, at path.
func claimStrings(claims map[string]any, path string) []string {
	switch v := claim(claims, path).(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
