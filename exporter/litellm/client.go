package litellm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// Config configures scraping a LiteLLM proxy.
type Config struct {
	// URL is the proxy's base URL (/metrics is appended) or its metrics
	// URL. Empty turns LiteLLM off.
	URL string `yaml:"url,omitempty"`
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
		Interval:   15 * time.Second,
		Timeout:    5 * time.Second,
		Spend:      true,
		ModelLabel: "requested_model",
		UserLabel:  "end_user",
		HTTPClient: config.DefaultHTTPClientConfig,
	}
}

// Enabled reports whether a URL is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate checks the settings.
func (c Config) Validate() error {
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fielderr.New("url", "must be an http(s) URL, not %q", c.URL)
		}
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

// MetricsURL is the URL scraped: the base URL with /metrics when it has no path.
func (c Config) MetricsURL() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return c.URL
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	return u.String()
}

// Client scrapes one LiteLLM proxy.
type Client struct {
	cfg  Config
	url  string
	http *http.Client
}

// NewClient builds a client for cfg.
func NewClient(cfg Config) (*Client, error) {
	hc, err := config.NewClientFromConfig(cfg.HTTPClient, "litellm")
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, url: cfg.MetricsURL(), http: hc}, nil
}

// URL is the scraped URL.
func (c *Client) URL() string { return c.url }

// Fetch scrapes and parses LiteLLM's metrics within the configured timeout.
// Any failure (connection, status, timeout, a body that does not parse or
// ends early) is an error; a partial result is never returned.
func (c *Client) Fetch(ctx context.Context) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
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
	snap, err := Parse(resp.Body, Options{ModelLabel: c.cfg.ModelLabel, UserLabel: c.cfg.UserLabel})
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
