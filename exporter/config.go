package exporter

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/auth"

	"github.com/usage-exporter/usage-exporter/exporter/classify"
	"github.com/usage-exporter/usage-exporter/exporter/dedup"
	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/storage"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/internal/configfile"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// Config is the exporter's configuration file. Each part is the
// configuration of the package that uses it.
type Config struct {
	Logs       LogsConfig      `yaml:"logs"`
	Classify   classify.Config `yaml:"classify"`
	Users      UsersConfig     `yaml:"users"`
	Plans      plans.Config    `yaml:"plans"`
	Duplicates dedup.Config    `yaml:"duplicates"`
	Pricing    pricing.Config  `yaml:"pricing"`
	LiteLLM    LiteLLMConfig   `yaml:"litellm"`
	Quota      QuotaConfig     `yaml:"quota"`
	Redis      RedisConfig     `yaml:"redis"`
	Metrics    MetricsConfig   `yaml:"metrics"`
	Labels     LabelsConfig    `yaml:"labels"`
	Rollups    RollupsConfig   `yaml:"rollups"`
	// Orgs are the organisations (a line's org_id, LiteLLM's org_id label).
	Orgs OrgsConfig `yaml:"orgs"`
	// Keycloak is the identity provider whose users' attributes give tiers
	// (quota.tier_sources: keycloak).
	Keycloak plans.KeycloakConfig `yaml:"keycloak"`
	// Storage measures volumes and databases for the storage cost.
	Storage storage.Config `yaml:"storage"`
	// Auth guards /api/v1/quotas: OIDC bearer tokens and rate limits.
	Auth auth.Config `yaml:"auth"`
}

// RedisConfig is the shared ledger's Redis, and where it keeps users' tiers.
type RedisConfig struct {
	quota.RedisConfig `yaml:",inline"`
	Tiers             plans.RedisConfig `yaml:",inline"`
}

// Validate checks both parts.
func (c RedisConfig) Validate() error {
	if err := c.RedisConfig.Validate(); err != nil {
		return err
	}
	return c.Tiers.Validate()
}

// QuotaConfig configures the usage ledger.
type QuotaConfig struct {
	Period quota.PeriodConfig `yaml:"period"`
	// TierSources orders where a user's tier comes from: log (the line's
	// tier field), redis (the user's hash or session), config (plans.users).
	// The first that knows the user wins; plans.default_tier is the last resort.
	TierSources []string `yaml:"tier_sources"`
	// KeepPeriods is how many billing periods the embedded ledger keeps.
	KeepPeriods int `yaml:"keep_periods"`
}

// DefaultQuotaConfig keeps three calendar months.
func DefaultQuotaConfig() QuotaConfig {
	return QuotaConfig{Period: quota.DefaultPeriodConfig(), TierSources: plans.DefaultSources(), KeepPeriods: 3}
}

func (c QuotaConfig) validate() error {
	if err := c.Period.Validate(); err != nil {
		return fielderr.Under("period", err)
	}
	if err := plans.ValidateSources(c.TierSources); err != nil {
		return fielderr.Under("tier_sources", err)
	}
	if c.KeepPeriods < 1 {
		return fielderr.New("keep_periods", "must be at least 1")
	}
	return nil
}

// LiteLLMConfig is the LiteLLM scrape plus where its spend is attributed.
type LiteLLMConfig struct {
	litellm.Config `yaml:",inline"`
	// APIService is the api_service LiteLLM's spend is attributed to.
	APIService string `yaml:"api_service"`
}

// LogsConfig says which files to read and how.
type LogsConfig struct {
	tailer.Config `yaml:",inline"`
	// Sources are the files or globs to read, each with its format.
	Sources []SourceConfig `yaml:"sources"`
	// CheckpointInterval is how often read positions are saved.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// InvalidLogInterval limits how often a bad line is logged, per source.
	InvalidLogInterval time.Duration `yaml:"invalid_log_interval"`
	// MaxClockSkew: a line dated later than now plus this is invalid (time).
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// MaxLineAge: a line dated earlier than now minus this is invalid (time).
	MaxLineAge time.Duration `yaml:"max_line_age"`
	// Limits bound the numbers of a line.
	Limits LimitsConfig `yaml:"limits"`
}

// SourceConfig is one path or glob and the format of its lines.
type SourceConfig struct {
	Path            string `yaml:"path"`
	logparse.Config `yaml:",inline"`
	// Spend says whether lines that name a model or carry tokens are priced
	// and their tokens counted. Unset, it is true unless LiteLLM is the
	// source of spend (litellm.spend), so that no call is counted twice.
	Spend *bool `yaml:"spend,omitempty"`
}

// ModelSpend resolves Spend against the LiteLLM setting.
func (s SourceConfig) ModelSpend(l LiteLLMConfig) bool {
	if s.Spend != nil {
		return *s.Spend
	}
	return !(l.Enabled() && l.Spend)
}

// User label policies.
const (
	UserLabelRaw     = "raw"
	UserLabelHashed  = "hashed"
	UserLabelDropped = "dropped"
)

// UsersConfig governs the user label, which carries personal data.
type UsersConfig struct {
	// Label is raw, hashed (keyed HMAC-SHA256, 16 hex digits) or dropped.
	Label string `yaml:"label"`
	// HashKey keys the hash; without it hashed ids can be reversed by
	// hashing candidate ids.
	HashKey string `yaml:"hash_key,omitempty"`
	// MaxUsers caps distinct user label values; the rest fold into __other__.
	MaxUsers int `yaml:"max_users"`
}

// OrgsConfig governs the organisation label as UsersConfig governs the
// user's: a policy for the value and a cap, past which organisations fold
// into __other__.
type OrgsConfig struct {
	Label   string `yaml:"label"`
	HashKey string `yaml:"hash_key,omitempty"`
	MaxOrgs int    `yaml:"max_orgs"`
}

// users is the equivalent user policy, which the organisations' labels use.
func (o OrgsConfig) users() UsersConfig {
	return UsersConfig{Label: o.Label, HashKey: o.HashKey, MaxUsers: o.MaxOrgs}
}

func (o OrgsConfig) validate() error {
	if o.MaxOrgs < 1 {
		return fielderr.New("max_orgs", "must be at least 1, not %d", o.MaxOrgs)
	}
	return o.users().validate()
}

// Defaults of settings that have no better home.
const (
	defaultCheckpointInterval = 5 * time.Second
	defaultInvalidLogInterval = 10 * time.Second
	defaultMaxClockSkew       = 5 * time.Minute
	defaultMaxLineAge         = 10 * 365 * 24 * time.Hour
)

// DefaultLogDir is where logs are looked for when nothing is configured.
const DefaultLogDir = "/var/log/ops-center"

// DefaultSource reads the *.log files of dir.
func DefaultSource(dir string) SourceConfig {
	return SourceConfig{Path: strings.TrimSuffix(dir, "/") + "/*.log", Config: logparse.DefaultConfig()}
}

// DefaultConfig returns the configuration used when no file is given. Its
// single source is DefaultLogDir/*.log. It reads nothing from the
// environment: the command's flags do that.
func DefaultConfig() Config {
	return Config{
		Logs: LogsConfig{
			Config:             tailer.DefaultConfig(),
			Sources:            []SourceConfig{DefaultSource(DefaultLogDir)},
			CheckpointInterval: defaultCheckpointInterval,
			InvalidLogInterval: defaultInvalidLogInterval,
			MaxClockSkew:       defaultMaxClockSkew,
			MaxLineAge:         defaultMaxLineAge,
			Limits:             DefaultLimitsConfig(),
		},
		Classify:   classify.DefaultConfig(),
		Users:      UsersConfig{Label: UserLabelRaw, MaxUsers: 10000},
		Plans:      plans.DefaultConfig(),
		Duplicates: dedup.DefaultConfig(),
		Pricing:    pricing.DefaultConfig(),
		LiteLLM:    LiteLLMConfig{Config: litellm.DefaultConfig(), APIService: "llm"},
		Quota:      DefaultQuotaConfig(),
		Redis:      RedisConfig{RedisConfig: quota.DefaultRedisConfig(), Tiers: plans.DefaultRedisConfig()},
		Metrics:    DefaultMetricsConfig(),
		Labels:     LabelsConfig{MaxBytes: 128, Overlong: OverlongHash},
		Rollups:    RollupsConfig{Days: 90, PushInterval: 10 * time.Second},
		Auth:       auth.DefaultConfig(),
		Storage:    storage.DefaultConfig(),
		Keycloak:   plans.DefaultKeycloakConfig(),
		Orgs:       OrgsConfig{Label: UserLabelRaw, MaxOrgs: 1000},
	}
}

// Validate checks every part and returns the first error, with its path.
func (c *Config) Validate() error {
	if err := c.Logs.validate(); err != nil {
		return fielderr.Under("logs", err)
	}
	checks := []struct {
		name string
		err  error
	}{
		{"classify", c.Classify.Validate()},
		{"users", c.Users.validate()},
		{"orgs", c.Orgs.validate()},
		{"plans", c.Plans.Validate()},
		{"duplicates", c.Duplicates.Validate()},
		{"pricing", c.Pricing.Validate()},
		{"auth", c.Auth.Validate()},
		{"storage", c.Storage.Validate()},
		{"keycloak", c.Keycloak.Validate()},
		{"litellm", c.LiteLLM.Validate()},
		{"quota", c.Quota.validate()},
		{"redis", c.Redis.Validate()},
		{"metrics", c.Metrics.Validate()},
		{"labels", c.Labels.validate()},
		{"rollups", c.Rollups.validate()},
	}
	for _, ch := range checks {
		if ch.err != nil {
			return fielderr.Under(ch.name, ch.err)
		}
	}
	return c.checkSpendSources()
}

// checkSpendSources refuses two sources of spend for the same calls, and a
// LiteLLM service that the classifier does not know.
func (c *Config) checkSpendSources() error {
	if !c.LiteLLM.Enabled() {
		return nil
	}
	known := c.LiteLLM.APIService == classify.OtherService
	for _, s := range c.Classify.Services {
		known = known || s.Name == c.LiteLLM.APIService
	}
	if !known {
		return fielderr.New("litellm.api_service", "%q is not a service of classify.services", c.LiteLLM.APIService)
	}
	if !c.LiteLLM.Spend {
		return nil
	}
	for i, s := range c.Logs.Sources {
		if s.Spend != nil && *s.Spend {
			return fielderr.New("logs.sources["+strconv.Itoa(i)+"].spend",
				"LiteLLM is the source of spend (litellm.spend: true): pricing this source's model calls too would count them twice; set one of them to false")
		}
	}
	return nil
}

func (l *LogsConfig) validate() error {
	if err := l.Config.Validate(); err != nil {
		return err
	}
	if len(l.Sources) == 0 {
		return fielderr.New("sources", "needs at least one path")
	}
	seen := map[string]bool{}
	for i, s := range l.Sources {
		p := "sources[" + strconv.Itoa(i) + "]"
		if s.Path == "" {
			return fielderr.New(p+".path", "must not be empty")
		}
		if _, err := filepath.Match(s.Path, ""); err != nil {
			return fielderr.New(p+".path", "bad pattern %q: %v", s.Path, err)
		}
		if seen[s.Path] {
			return fielderr.New(p+".path", "%q is listed twice", s.Path)
		}
		seen[s.Path] = true
		if err := s.Config.Validate(); err != nil {
			return fielderr.Under(p, err)
		}
	}
	if l.CheckpointInterval < 100*time.Millisecond {
		return fielderr.New("checkpoint_interval", "must be at least 100ms, not %s", l.CheckpointInterval)
	}
	if l.InvalidLogInterval < 0 {
		return fielderr.New("invalid_log_interval", "must not be negative")
	}
	if l.MaxClockSkew < 0 {
		return fielderr.New("max_clock_skew", "must not be negative")
	}
	if l.MaxLineAge <= 0 {
		return fielderr.New("max_line_age", "must be positive")
	}
	if err := l.Limits.validate(); err != nil {
		return fielderr.Under("limits", err)
	}
	return nil
}

func (u UsersConfig) validate() error {
	switch u.Label {
	case UserLabelRaw, UserLabelHashed, UserLabelDropped:
	default:
		return fielderr.New("label", "must be raw, hashed or dropped, not %q", u.Label)
	}
	if u.MaxUsers < 1 {
		return fielderr.New("max_users", "must be at least 1, not %d", u.MaxUsers)
	}
	return nil
}

// LoadConfig reads and validates a configuration file. Errors name the file,
// the line and the field.
func LoadConfig(path string) (*Config, error) {
	cfg := DefaultConfig()
	if err := configfile.Load(path, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// ParseConfig decodes YAML strictly over the defaults: unknown keys are
// errors, and a value that fails validation is reported with its line.
func ParseConfig(data []byte) (*Config, error) {
	cfg := DefaultConfig()
	if err := configfile.Parse(data, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// checkpointEvery is how often a checkpoint is taken: the state file is
// written, what it holds becomes visible to scrapes, and, with Redis, the
// ledger's batch is committed.
func (c *Config) checkpointEvery() time.Duration {
	if c.Redis.Enabled() {
		return min(c.Logs.CheckpointInterval, c.Redis.FlushInterval)
	}
	return c.Logs.CheckpointInterval
}
