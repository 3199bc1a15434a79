package exporter

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/plans"
)

func TestLoadGoodConfig(t *testing.T) {
	cfg, err := LoadConfig("testdata/config/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"start", cfg.Logs.Start, "beginning"},
		{"poll", cfg.Logs.PollInterval, 100 * time.Millisecond},
		{"sources", len(cfg.Logs.Sources), 2},
		{"second format", cfg.Logs.Sources[1].Format, "nginx"},
		{"field map", strings.Join(cfg.Logs.Sources[0].Fields["user_id"], ","), "uid,user_id"},
		{"timezone", cfg.Logs.Sources[0].Timezone, "Europe/Berlin"},
		{"services", len(cfg.Classify.Services), 2},
		{"label", cfg.Users.Label, UserLabelHashed},
		{"tiers", len(cfg.Plans.Tiers), 3},
		{"unlimited", *cfg.Plans.Tiers[2].Calls, plans.Unlimited},
		{"underscored number", *cfg.Plans.Tiers[0].Tokens, plans.Limit(100000)},
		{"user tier", cfg.Plans.Users["alice@example.com"], "team"},
		{"window", cfg.Duplicates.Window, 30 * time.Minute},
		{"buckets", len(cfg.Metrics.DurationBuckets), 5},
		{"native", cfg.Metrics.NativeHistograms, false},
		{"price files", len(cfg.Pricing.Files), 1},
		{"alias", cfg.Pricing.Aliases["prod-chat"], "gpt-4o"},
		{"per call merged over defaults", cfg.Pricing.PerCall["search"], 0.001},
		{"litellm url", cfg.LiteLLM.URL, "http://litellm:4000"},
		{"litellm user label", cfg.LiteLLM.UserLabel, "user"},
		{"litellm auth", cfg.LiteLLM.HTTPClient.Authorization.CredentialsFile, "/etc/litellm/master-key"},
		{"json source priced? no: LiteLLM is the source", cfg.Logs.Sources[0].ModelSpend(cfg.LiteLLM), false},
		{"explicit spend false", *cfg.Logs.Sources[1].Spend, false},
		// Unset keys keep their defaults.
		{"default checkpoint", cfg.Logs.CheckpointInterval, 2 * time.Second},
		{"default factor", cfg.Metrics.NativeBucketFactor, 1.1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// The defaults read nothing from the environment (the command's flags do:
// cmd/usage-exporter's TestEnvironmentDefaults).
func TestEmptyConfigIsDefaults(t *testing.T) {
	t.Setenv("LOG_DIR", "/srv/logs/")
	t.Setenv("LITELLM_PROXY_URL", "http://litellm:4000")
	t.Setenv("REDIS_HOST", "redis")
	cfg, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Logs.Sources[0].Path; got != DefaultLogDir+"/*.log" {
		t.Errorf("default source %q, want %s/*.log", got, DefaultLogDir)
	}
	if cfg.LiteLLM.URL != "" || cfg.Redis.URL != "" {
		t.Errorf("defaults read the environment: litellm %q, redis %q", cfg.LiteLLM.URL, cfg.Redis.URL)
	}
	if len(cfg.Plans.Tiers) != 4 || cfg.Classify.MaxRoutes != 500 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

// Every rejection names the file, the line and the field.
func TestBadConfigs(t *testing.T) {
	cases := map[string]string{
		"bad-unknown-field.yml": "bad-unknown-field.yml: line 4: field formatt not found in type exporter.SourceConfig",
		"bad-format.yml":        `bad-format.yml: line 5: logs.sources[1].format: must be one of json, nginx, not "apache"`,
		"bad-duration.yml":      "bad-duration.yml: line 2: cannot unmarshal !!str `soon` into time.Duration",
		"bad-tier.yml":          `bad-tier.yml: line 4: plans.tiers[1].calls: is required`,
		"bad-limit.yml":         `bad-limit.yml: line 3: limit must be a non-negative integer or "unlimited", not "lots"`,
		"bad-user-tier.yml":     `bad-user-tier.yml: line 3: plans.users.bob: unknown tier "platinum"`,
		"bad-service.yml":       "bad-service.yml: line 4: classify.services[0].prefixes[0]: must start with /",
		// The glob is checked at load, not when the tailer starts.
		"bad-glob.yml": `bad-glob.yml: line 3: logs.sources[0].path: bad pattern "logs/[x.log": syntax error in pattern`,
		// yaml.v3 reports the line where the broken mapping starts.
		"bad-yaml.yml": "bad-yaml.yml: line 1: did not find expected key",
	}
	for file, want := range cases {
		_, err := LoadConfig(filepath.Join("testdata/config", file))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v\nwant an error containing %q", file, err, want)
		}
	}
}
