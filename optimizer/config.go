package optimizer

import (
	"github.com/usage-exporter/usage-exporter/internal/auth"
	"github.com/usage-exporter/usage-exporter/internal/configfile"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// Config is the optimizer's configuration file.
type Config struct {
	// Pricing and Plans use the exporter's formats; point both at the same files.
	Pricing pricing.Config `yaml:"pricing"`
	Plans   plans.Config   `yaml:"plans"`

	Priority      PriorityConfig      `yaml:"priority"`
	ModelSwitch   ModelSwitchConfig   `yaml:"model_switch"`
	SmartRouting  SmartRoutingConfig  `yaml:"smart_routing"`
	Caching       CachingConfig       `yaml:"caching"`
	PlansAnalysis PlansAnalysisConfig `yaml:"plan_analysis"`
	Consolidation ConsolidationConfig `yaml:"consolidation"`
	Batch         BatchConfig         `yaml:"batch"`
	Scheduling    SchedulingConfig    `yaml:"scheduling"`
	GPU           GPUConfig           `yaml:"gpu"`
	Costs         CostsConfig         `yaml:"costs"`

	// Auth guards the analytics API: OIDC bearer tokens and rate limits.
	Auth auth.Config `yaml:"auth"`
	// Keycloak, when its url is set, names the users of by-user.
	Keycloak plans.KeycloakConfig `yaml:"keycloak"`
}

// PriorityConfig grades monthly savings: high when at least
// max(HighMin, HighShare x spend), medium when at least max(MediumMin,
// MediumShare x spend), else low; under DropBelow a finding is dropped.
type PriorityConfig struct {
	HighMin     float64 `yaml:"high_min"`
	HighShare   float64 `yaml:"high_share"`
	MediumMin   float64 `yaml:"medium_min"`
	MediumShare float64 `yaml:"medium_share"`
	DropBelow   float64 `yaml:"drop_below"`
}

// ModelSwitchConfig: candidates need quality at least max(MinQuality, current - MaxQualityDrop).
type ModelSwitchConfig struct {
	MinQuality     float64 `yaml:"min_quality"`
	MaxQualityDrop float64 `yaml:"max_quality_drop"`
}

// SmartRoutingConfig: simple queries on models of MinQuality or more go to
// the cheapest model of TargetQuality or more.
type SmartRoutingConfig struct {
	MinQuality    float64 `yaml:"min_quality"`
	TargetQuality float64 `yaml:"target_quality"`
}

// CachingConfig holds the cache assumptions.
type CachingConfig struct {
	MinDuplicateRate         float64 `yaml:"min_duplicate_rate"`
	HitRate                  float64 `yaml:"hit_rate"`
	InfrastructureMonthly    float64 `yaml:"infrastructure_monthly"`
	SemanticService          string  `yaml:"semantic_service"`
	SemanticMinDuplicateRate float64 `yaml:"semantic_min_duplicate_rate"`
	SemanticFraction         float64 `yaml:"semantic_fraction"`
	VectorStoreMonthly       float64 `yaml:"vector_store_monthly"`
}

// PlansAnalysisConfig holds the plan thresholds.
type PlansAnalysisConfig struct {
	UnderShare        float64 `yaml:"under_share"`         // a user under this share of quota is under-using it
	BillingUnderShare float64 `yaml:"billing_under_share"` // share of a tier's users under-using it
	BillingOverShare  float64 `yaml:"billing_over_share"`  // share of a tier's users over it
}

// ConsolidationConfig: with MinModels models in use, those under MaxShare
// of calls are candidates.
type ConsolidationConfig struct {
	MinModels int     `yaml:"min_models"`
	MaxShare  float64 `yaml:"max_share"`
}

// BatchConfig says which traffic can wait for a batch API.
type BatchConfig struct {
	Services []string `yaml:"services"`
	Routes   []string `yaml:"routes,omitempty"`
	Discount float64  `yaml:"discount"` // where the price table has no batch rate
}

// SchedulingConfig holds the hourly-profile thresholds.
type SchedulingConfig struct {
	BusiestHours      int     `yaml:"busiest_hours"`
	OffPeakDiscount   float64 `yaml:"off_peak_discount"`
	PeakToMean        float64 `yaml:"peak_to_mean"`
	PeakShiftFraction float64 `yaml:"peak_shift_fraction"`
	MinToMax          float64 `yaml:"min_to_max"`
	ScaleDownFraction float64 `yaml:"scale_down_fraction"`
}

// GPUConfig holds the GPU thresholds.
type GPUConfig struct {
	TargetUtilization   float64 `yaml:"target_utilization"`
	RecoverableFraction float64 `yaml:"recoverable_fraction"`
}

// CostsConfig are costs the optimizer cannot measure; 0 means unknown.
type CostsConfig struct {
	GPUHourly            float64 `yaml:"gpu_hourly"`
	InfrastructureHourly float64 `yaml:"infrastructure_hourly"`
	// SplitAcrossOrgs shares InfrastructureHourly evenly among the
	// organisations active in the window (costs' cost_by_org).
	SplitAcrossOrgs bool `yaml:"split_infrastructure_across_orgs"`
}

// DefaultConfig holds the assumptions of OPTIMIZER.md.
func DefaultConfig() Config {
	return Config{
		Pricing:      pricing.DefaultConfig(),
		Plans:        plans.DefaultConfig(),
		Priority:     PriorityConfig{HighMin: 100, HighShare: 0.10, MediumMin: 20, MediumShare: 0.02, DropBelow: 1},
		ModelSwitch:  ModelSwitchConfig{MinQuality: 85, MaxQualityDrop: 5},
		SmartRouting: SmartRoutingConfig{MinQuality: 90, TargetQuality: 75},
		Caching: CachingConfig{MinDuplicateRate: 0.20, HitRate: 0.8, InfrastructureMonthly: 10, SemanticService: "llm",
			SemanticMinDuplicateRate: 0.10, SemanticFraction: 0.5, VectorStoreMonthly: 25},
		PlansAnalysis: PlansAnalysisConfig{UnderShare: 0.25, BillingUnderShare: 0.30, BillingOverShare: 0.10},
		Consolidation: ConsolidationConfig{MinModels: 4, MaxShare: 0.05},
		Batch:         BatchConfig{Services: []string{"embeddings"}, Discount: 0.5},
		Scheduling: SchedulingConfig{BusiestHours: 4, OffPeakDiscount: 0.2, PeakToMean: 2, PeakShiftFraction: 0.2,
			MinToMax: 0.3, ScaleDownFraction: 0.5},
		GPU:      GPUConfig{TargetUtilization: 0.7, RecoverableFraction: 0.5},
		Auth:     auth.DefaultConfig(),
		Keycloak: plans.DefaultKeycloakConfig(),
	}
}

// Validate checks ranges.
func (c *Config) Validate() error {
	if err := c.Pricing.Validate(); err != nil {
		return fielderr.Under("pricing", err)
	}
	if err := c.Plans.Validate(); err != nil {
		return fielderr.Under("plans", err)
	}
	if err := c.Auth.Validate(); err != nil {
		return fielderr.Under("auth", err)
	}
	if err := c.Keycloak.Validate(); err != nil {
		return fielderr.Under("keycloak", err)
	}
	shares := []struct {
		name string
		v    float64
	}{
		{"priority.high_share", c.Priority.HighShare}, {"priority.medium_share", c.Priority.MediumShare},
		{"caching.min_duplicate_rate", c.Caching.MinDuplicateRate}, {"caching.hit_rate", c.Caching.HitRate},
		{"caching.semantic_min_duplicate_rate", c.Caching.SemanticMinDuplicateRate},
		{"caching.semantic_fraction", c.Caching.SemanticFraction},
		{"plan_analysis.under_share", c.PlansAnalysis.UnderShare},
		{"plan_analysis.billing_under_share", c.PlansAnalysis.BillingUnderShare},
		{"plan_analysis.billing_over_share", c.PlansAnalysis.BillingOverShare},
		{"consolidation.max_share", c.Consolidation.MaxShare}, {"batch.discount", c.Batch.Discount},
		{"scheduling.off_peak_discount", c.Scheduling.OffPeakDiscount},
		{"scheduling.peak_shift_fraction", c.Scheduling.PeakShiftFraction},
		{"scheduling.min_to_max", c.Scheduling.MinToMax}, {"scheduling.scale_down_fraction", c.Scheduling.ScaleDownFraction},
		{"gpu.target_utilization", c.GPU.TargetUtilization}, {"gpu.recoverable_fraction", c.GPU.RecoverableFraction},
	}
	for _, s := range shares {
		if !(s.v >= 0 && s.v <= 1) {
			return fielderr.New(s.name, "must be between 0 and 1, not %v", s.v)
		}
	}
	nonNeg := []struct {
		name string
		v    float64
	}{
		{"priority.high_min", c.Priority.HighMin}, {"priority.medium_min", c.Priority.MediumMin},
		{"priority.drop_below", c.Priority.DropBelow}, {"caching.infrastructure_monthly", c.Caching.InfrastructureMonthly},
		{"caching.vector_store_monthly", c.Caching.VectorStoreMonthly}, {"costs.gpu_hourly", c.Costs.GPUHourly},
		{"costs.infrastructure_hourly", c.Costs.InfrastructureHourly}, {"scheduling.peak_to_mean", c.Scheduling.PeakToMean},
		{"model_switch.min_quality", c.ModelSwitch.MinQuality}, {"model_switch.max_quality_drop", c.ModelSwitch.MaxQualityDrop},
		{"smart_routing.min_quality", c.SmartRouting.MinQuality}, {"smart_routing.target_quality", c.SmartRouting.TargetQuality},
	}
	for _, s := range nonNeg {
		if !(s.v >= 0) {
			return fielderr.New(s.name, "must not be negative, not %v", s.v)
		}
	}
	if c.Scheduling.BusiestHours < 1 || c.Scheduling.BusiestHours > 23 {
		return fielderr.New("scheduling.busiest_hours", "must be between 1 and 23")
	}
	if c.Consolidation.MinModels < 2 {
		return fielderr.New("consolidation.min_models", "must be at least 2")
	}
	return nil
}

// LoadConfig reads a configuration file strictly; errors name the file and line.
func LoadConfig(path string) (*Config, error) {
	c := DefaultConfig()
	if err := configfile.Load(path, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseConfig decodes YAML over the defaults; unknown keys are errors.
func ParseConfig(data []byte) (*Config, error) {
	c := DefaultConfig()
	if err := configfile.Parse(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}
