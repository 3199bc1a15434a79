package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Guard wraps an API: it authenticates (when OIDC is on), authorises the
// role, and rate limits. Its refusals are JSON bodies that say which check
// failed and never carry an internal URL or a dial error: those are logged.
type Guard struct {
	cfg      Config
	verifier *Verifier
	user     *Limiter
	org      *Limiter
	address  *Limiter
	log      *slog.Logger
}

// Refusal is the JSON body of a 401, 403, 429 or 503 from the guard.
type Refusal struct {
	Error  string `json:"error"`
	Reason string `json:"reason"` // missing_token, invalid_token, missing_role, rate_limited, identity_provider_unavailable
	// Limit is the limit exceeded, for 429: "user", "org" or "address".
	Limit             string `json:"limit,omitempty"`
	RetryAfterSeconds int    `json:"retry_after_seconds,omitempty"`
}

// NewGuard builds the guard of c. client reaches the issuer; now is the clock
// of token expiry and of the buckets (nil: time.Now).
func NewGuard(c Config, client *http.Client, now func() time.Time, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{cfg: c, log: log,
		user: NewLimiter(c.RateLimit.User, now), org: NewLimiter(c.RateLimit.Org, now),
		address: NewLimiter(c.RateLimit.Address, now)}
	if c.Enabled() {
		g.verifier = NewVerifier(c.OIDC, client, now)
	}
	return g
}

// Wrap guards next.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, next) })
}

// Reloadable is a guard that a configuration reload replaces; an unchanged
// configuration keeps the guard, so its buckets and cached keys survive.
type Reloadable struct {
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	cur    atomic.Pointer[Guard]
}

// NewReloadable guards with c until Set is given another configuration.
func NewReloadable(c Config, client *http.Client, now func() time.Time, log *slog.Logger) *Reloadable {
	r := &Reloadable{client: client, now: now, log: log}
	r.cur.Store(NewGuard(c, client, now, log))
	return r
}

// Set applies c to the requests that follow.
func (r *Reloadable) Set(c Config) {
	if reflect.DeepEqual(r.cur.Load().cfg, c) {
		return
	}
	r.cur.Store(NewGuard(c, r.client, r.now, r.log))
}

// Wrap guards next with the current guard.
func (r *Reloadable) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.cur.Load().serve(w, req, next) })
}

func (g *Guard) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if g.verifier == nil {
		if g.limited(w, g.address, "address", clientAddress(r)) {
			return
		}
		next.ServeHTTP(w, r)
		return
	}
	p, err := g.verifier.Verify(r)
	if err != nil {
		// Callers without a valid token share their address's bucket, so
		// guessing tokens is as slow as the address limit.
		if g.limited(w, g.address, "address", clientAddress(r)) {
			return
		}
		var ke *errKeys
		switch {
		case errors.As(err, &ke):
			g.log.Error("cannot verify API tokens: the issuer's keys are unreachable", "err", err)
			w.Header().Set("Retry-After", "30")
			writeJSON(w, http.StatusServiceUnavailable, Refusal{Error: "the identity provider cannot be reached to verify the token; try again later",
				Reason: "identity_provider_unavailable", RetryAfterSeconds: 30})
		case errors.Is(err, ErrNoToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="usage"`)
			writeJSON(w, http.StatusUnauthorized, Refusal{Error: "this API needs a bearer token (Authorization: Bearer <token>)", Reason: "missing_token"})
		default:
			g.log.Debug("API token refused", "address", clientAddress(r), "err", err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="usage", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, Refusal{Error: "the bearer token is not valid: " + tokenProblem(err), Reason: "invalid_token"})
		}
		return
	}
	if !p.Admin {
		if g.limited(w, g.user, "user", p.User) {
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="usage", error="insufficient_scope"`)
		writeJSON(w, http.StatusForbidden, Refusal{
			Error: fmt.Sprintf("the token does not hold the role %q in %s", g.cfg.OIDC.Role, g.cfg.OIDC.RoleClaim), Reason: "missing_role"})
		return
	}
	if !g.cfg.RateLimit.AdminsBypass {
		if g.limited(w, g.user, "user", p.User) {
			return
		}
		if p.Org != "" && g.limited(w, g.org, "org", p.Org) {
			return
		}
	}
	next.ServeHTTP(w, r)
}

// tokenProblem says what is wrong with a token in words that reveal nothing
// about this deployment beyond what the token itself says.
func tokenProblem(err error) string {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return "it has expired"
	}
	s := err.Error()
	for _, p := range []struct{ in, say string }{
		{"malformed", "it is not a signed JWT"},
		{"issued by a different provider", "it was issued by another issuer"},
		{"expected audience", "it was issued for another audience"},
		{"unsupported algorithm", "it is signed with an algorithm this API does not accept"},
		{"before the nbf", "it is not valid yet"},
		{"verify signature", "its signature does not verify"},
		{"not signed", "it is not signed"},
	} {
		if strings.Contains(s, p.in) {
			return p.say
		}
	}
	return "it could not be verified"
}

func (g *Guard) limited(w http.ResponseWriter, l *Limiter, which, key string) bool {
	ok, wait := l.Allow(key)
	if ok {
		return false
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, Refusal{
		Error:  fmt.Sprintf("rate limit of %d requests a minute per %s exceeded; retry in %d s", l.PerMinute, which, secs),
		Reason: "rate_limited", Limit: which, RetryAfterSeconds: secs})
	return true
}

// clientAddress is the peer's address; a proxy in front makes all its
// clients one, which errs on the side of limiting.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
