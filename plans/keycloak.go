package plans

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// SourceKeycloak is the user's subscription_tier attribute in Keycloak.
const SourceKeycloak = "keycloak"

// KeycloakConfig reads users through Keycloak's admin REST API with a
// service account (a confidential client with the client credentials grant
// and the realm-management role view-users).
type KeycloakConfig struct {
	// URL is Keycloak's base URL (https://keycloak.example); Realm the realm.
	URL   string `yaml:"url"`
	Realm string `yaml:"realm"`
	// ClientID and the secret (or a file holding it) of the service account.
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret,omitempty"`
	ClientSecretFile string `yaml:"client_secret_file,omitempty"`
	// TierAttribute and CallsLimitAttribute are the user attributes read.
	TierAttribute       string `yaml:"tier_attribute"`
	CallsLimitAttribute string `yaml:"calls_limit_attribute"`
	// Refresh is how often the users are read again; PageSize how many a request.
	Refresh  time.Duration `yaml:"refresh"`
	PageSize int           `yaml:"page_size"`
	Timeout  time.Duration `yaml:"timeout"`
}

// DefaultKeycloakConfig reads nothing until a URL is set.
func DefaultKeycloakConfig() KeycloakConfig {
	return KeycloakConfig{TierAttribute: "subscription_tier", CallsLimitAttribute: "api_calls_limit",
		Refresh: 5 * time.Minute, PageSize: 100, Timeout: 10 * time.Second}
}

// Enabled reports whether Keycloak is configured.
func (c KeycloakConfig) Enabled() bool { return c.URL != "" }

// Validate checks the block; paths are relative to it.
func (c KeycloakConfig) Validate() error {
	if !c.Enabled() {
		return nil
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fielderr.New("url", "must be Keycloak's http(s) base URL, not %q", c.URL)
	}
	switch {
	case c.Realm == "" || strings.ContainsAny(c.Realm, "/?#"):
		return fielderr.New("realm", "must name the realm")
	case c.ClientID == "":
		return fielderr.New("client_id", "must name the service account's client")
	case (c.ClientSecret == "") == (c.ClientSecretFile == ""):
		return fielderr.New("client_secret", "set client_secret or client_secret_file, one of them")
	case c.TierAttribute == "":
		return fielderr.New("tier_attribute", "must name the attribute holding the tier")
	case c.Refresh < 10*time.Second:
		return fielderr.New("refresh", "must be at least 10s")
	case c.PageSize < 1 || c.PageSize > 1000:
		return fielderr.New("page_size", "must be from 1 to 1000")
	case c.Timeout <= 0:
		return fielderr.New("timeout", "must be positive")
	}
	return nil
}

// KeycloakUser is what is kept of a Keycloak user.
type KeycloakUser struct {
	ID, Username, Email, Tier string
	CallsLimit                int64 // -1 when the attribute is absent
}

// Keycloak is a cached directory of the realm's users, refreshed on an
// interval; a failed refresh keeps the last good directory, sets the up
// gauge to 0 and logs, and never stops the process.
type Keycloak struct {
	cfg    KeycloakConfig
	client *http.Client // carries the service account's token
	log    *slog.Logger
	users  atomic.Pointer[map[string]*KeycloakUser] // by id, username and email

	up, count, last prometheus.Gauge
}

// NewKeycloak reads the realm of cfg; base (nil: http.DefaultClient) is the
// transport's client, namespace the metrics' ("usage_exporter").
func NewKeycloak(cfg KeycloakConfig, base *http.Client, namespace string, log *slog.Logger) (*Keycloak, error) {
	secret := cfg.ClientSecret
	if cfg.ClientSecretFile != "" {
		b, err := os.ReadFile(cfg.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("keycloak.client_secret_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if base == nil {
		base = http.DefaultClient
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := strings.TrimSuffix(cfg.URL, "/")
	cc := clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: secret,
		TokenURL: root + "/realms/" + url.PathEscape(cfg.Realm) + "/protocol/openid-connect/token"}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, base)
	k := &Keycloak{cfg: cfg, client: cc.Client(ctx), log: log,
		up: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "keycloak_up",
			Help: "1 if the last read of Keycloak's users succeeded; at 0 the last good directory is used."}),
		count: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "keycloak_users",
			Help: "Users read from Keycloak at the last success."}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "keycloak_last_success_timestamp_seconds",
			Help: "When Keycloak's users were last read."})}
	k.client.Timeout = cfg.Timeout
	empty := map[string]*KeycloakUser{}
	k.users.Store(&empty)
	return k, nil
}

// Collectors are the source's health series.
func (k *Keycloak) Collectors() []prometheus.Collector {
	return []prometheus.Collector{k.up, k.count, k.last}
}

// StartKeycloak builds the directory of cfg, registers its health series
// under namespace in reg and reads it in the background until ctx ends
// (tick as for Run): until the first read it knows no one.
func StartKeycloak(ctx context.Context, cfg KeycloakConfig, reg prometheus.Registerer, namespace string, log *slog.Logger,
	tick <-chan time.Time) (*Keycloak, error) {
	k, err := NewKeycloak(cfg, nil, namespace, log)
	if err != nil {
		return nil, err
	}
	for _, c := range k.Collectors() {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	go k.Run(ctx, tick)
	return k, nil
}

// Tier implements Lookup from the cache: it never blocks.
func (k *Keycloak) Tier(user []byte) (string, bool) {
	u := (*k.users.Load())[string(user)]
	if u == nil || u.Tier == "" {
		return "", false
	}
	return u.Tier, true
}

// User returns what Keycloak says of a user id (or username, or email).
func (k *Keycloak) User(id string) (*KeycloakUser, bool) {
	u := (*k.users.Load())[id]
	return u, u != nil
}

// Run refreshes the directory now and every cfg.Refresh until ctx ends;
// tick (nil: a ticker) says when, for tests.
func (k *Keycloak) Run(ctx context.Context, tick <-chan time.Time) {
	admin.Every(ctx, k.cfg.Refresh, tick, func(ctx context.Context) { _ = k.Refresh(ctx) })
}

// keycloakUser is the admin API's UserRepresentation, the fields read.
type keycloakUser struct {
	ID         string              `json:"id"`
	Username   string              `json:"username"`
	Email      string              `json:"email"`
	Enabled    *bool               `json:"enabled"`
	Attributes map[string][]string `json:"attributes"`
}

// Refresh reads every user, page by page; on failure the directory stays.
func (k *Keycloak) Refresh(ctx context.Context) error {
	users := map[string]*KeycloakUser{}
	n := 0
	root := strings.TrimSuffix(k.cfg.URL, "/") + "/admin/realms/" + url.PathEscape(k.cfg.Realm) + "/users"
	for first := 0; ; first += k.cfg.PageSize {
		page, err := k.page(ctx, fmt.Sprintf("%s?first=%d&max=%d&briefRepresentation=false", root, first, k.cfg.PageSize))
		if err != nil {
			k.up.Set(0)
			k.log.Warn("reading users from Keycloak failed; the last good directory stays", "err", err)
			return err
		}
		for _, ku := range page {
			if ku.Enabled != nil && !*ku.Enabled {
				continue
			}
			u := &KeycloakUser{ID: ku.ID, Username: ku.Username, Email: ku.Email, CallsLimit: -1}
			if v := ku.Attributes[k.cfg.TierAttribute]; len(v) > 0 {
				u.Tier = v[0]
			}
			if v := ku.Attributes[k.cfg.CallsLimitAttribute]; len(v) > 0 {
				if l, err := strconv.ParseInt(v[0], 10, 64); err == nil && l >= 0 {
					u.CallsLimit = l
				}
			}
			n++
			for _, key := range []string{u.ID, u.Username, u.Email} {
				if key != "" {
					users[key] = u
				}
			}
		}
		if len(page) < k.cfg.PageSize {
			break
		}
	}
	k.users.Store(&users)
	k.up.Set(1)
	k.count.Set(float64(n))
	k.last.SetToCurrentTime()
	return nil
}

func (k *Keycloak) page(ctx context.Context, u string) ([]keycloakUser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET users: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var page []keycloakUser
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page); err != nil {
		return nil, fmt.Errorf("GET users: %w", err)
	}
	return page, nil
}
