package litellm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// Config configures scraping LiteLLM.
type Config struct {
	// URL is the proxy's base URL (/metrics is appended) or its metrics
	// URL. Empty, with no Targets, turns LiteLLM off.
	URL string `yaml:"url,omitempty"`
	// Targets are LiteLLM processes to scrape besides URL: URLs, or
	// dns+http(s)://name:port/path to scrape every address a DNS name has
	// (each replica behind a headless Service).
	Targets []string `yaml:"targets,omitempty"`
	// RefreshInterval is how often dns+ targets are resolved again.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// ProcessRetention is how long the counters of a LiteLLM process not
	// seen are kept: one that answers again within it counts on from them.
	ProcessRetention time.Duration `yaml:"process_retention"`
	// Interval between scrapes.
	Interval time.Duration `yaml:"interval"`
	// Timeout of one scrape.
	Timeout time.Duration `yaml:"timeout"`
	// Spend makes LiteLLM the source of tokens and spend of the calls it
	// reports; log lines that carry a model are then not priced.
	Spend bool `yaml:"spend"`
	// ModelLabel: requested_model (default) or model.
	ModelLabel string `yaml:"model_label"`
	// UserLabel: end_user (default), user, api_key_alias or team_alias.
	UserLabel string `yaml:"user_label"`
	// HTTPClient holds authorization, TLS and proxy settings, in Prometheus'
	// http_config format (LiteLLM may require its master key for /metrics).
	HTTPClient config.HTTPClientConfig `yaml:"http_client,omitempty"`
}

// DefaultConfig scrapes every 15 s, once a URL is set.
func DefaultConfig() Config {
	return Config{
		RefreshInterval:  30 * time.Second,
		ProcessRetention: 24 * time.Hour,
		Interval:         15 * time.Second,
		Timeout:          5 * time.Second,
		Spend:            true,
		ModelLabel:       "requested_model",
		UserLabel:        "end_user",
		HTTPClient:       config.DefaultHTTPClientConfig,
	}
}

// Enabled reports whether a URL or a target is configured.
func (c Config) Enabled() bool { return c.URL != "" || len(c.Targets) > 0 }

// AllTargets are URL and Targets, each once.
func (c Config) AllTargets() []string {
	var out []string
	for _, t := range append([]string{c.URL}, c.Targets...) {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.URL != "" {
		if t, err := ParseTarget(c.URL); err != nil || t.DNS {
			return fielderr.New("url", "must be an http(s) URL, not %q", c.URL)
		}
	}
	for i, s := range c.Targets {
		if _, err := ParseTarget(s); err != nil {
			return fielderr.New(fmt.Sprintf("targets[%d]", i), "%v", err)
		}
	}
	if c.RefreshInterval < time.Second {
		return fielderr.New("refresh_interval", "must be at least 1s, not %s", c.RefreshInterval)
	}
	if c.ProcessRetention < c.Interval {
		return fielderr.New("process_retention", "must be at least the interval, not %s", c.ProcessRetention)
	}
	if c.Interval < 100*time.Millisecond {
		return fielderr.New("interval", "must be at least 100ms, not %s", c.Interval)
	}
	if c.Timeout <= 0 || c.Timeout > c.Interval {
		return fielderr.New("timeout", "must be positive and at most the interval, not %s", c.Timeout)
	}
	switch c.ModelLabel {
	case "requested_model", "model":
	default:
		return fielderr.New("model_label", "must be requested_model or model, not %q", c.ModelLabel)
	}
	switch c.UserLabel {
	case "end_user", "user", "api_key_alias", "team_alias":
	default:
		return fielderr.New("user_label", "must be end_user, user, api_key_alias or team_alias, not %q", c.UserLabel)
	}
	if err := c.HTTPClient.Validate(); err != nil {
		return fielderr.New("http_client", "%v", err)
	}
	return nil
}

// Client scrapes the endpoints of one target.
type Client struct {
	cfg    Config
	target Target
	http   *http.Client
}

// NewClient builds a client for one target of cfg.
func NewClient(cfg Config, target Target) (*Client, error) {
	hc := cfg.HTTPClient
	if target.DNS && target.Scheme == "https" && hc.TLSConfig.ServerName == "" {
		// Scraped by address, the certificate still names the host.
		hc.TLSConfig.ServerName = target.Host
	}
	client, err := config.NewClientFromConfig(hc, "litellm")
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, target: target, http: client}, nil
}

// Target is the client's target.
func (c *Client) Target() Target { return c.target }

// Fetch scrapes and parses one endpoint's metrics within the configured
// timeout. Any failure (connection, status, timeout, a body that does not
// parse or ends early) is an error; a partial result is never returned.
func (c *Client) Fetch(ctx context.Context, endpoint string) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, err
	}
	if c.target.DNS {
		req.Host = c.target.HostPort()
	}
	// The text format: expfmt's OpenMetrics parser is far slower, and a
	// truncated body is caught by the transport (Content-Length or chunking)
	// and by the final newline.
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, cleanErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "text/plain") &&
		!strings.HasPrefix(ct, "application/openmetrics-text") {
		return nil, fmt.Errorf("unexpected content type %q", ct)
	}
	ignore := DefaultIgnoredRoutes
	if p := c.target.Path; !slices.Contains(ignore, p) {
		ignore = append(slices.Clip(ignore), p)
	}
	snap, err := Parse(resp.Body, Options{ModelLabel: c.cfg.ModelLabel, UserLabel: c.cfg.UserLabel, IgnoreRoutes: ignore})
	if err != nil {
		return nil, cleanErr(err)
	}
	return snap, nil
}

func cleanErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out")
	}
	return err
}
