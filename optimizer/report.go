package optimizer

import (
	"time"
)

// Report is one analysis of a window, rendered into the response shapes of
// the analytics API (../shared/API.md). It is what the cache holds: plain
// JSON, so sidecars sharing Redis share it.
type Report struct {
	Days        int       `json:"days"`
	GeneratedAt time.Time `json:"generated_at"`
	Meta        Meta      `json:"meta"`

	Overview     Overview             `json:"overview"`
	Patterns     Patterns             `json:"patterns"`
	Users        []UserRow            `json:"users"` // all users, most calls first
	Services     []ServiceRow         `json:"services"`
	Costs        Costs                `json:"costs"`
	Optimization Optimization         `json:"optimization"`
	Performance  Performance          `json:"performance"`
	Quotas       map[string]TierQuota `json:"quotas"`

	// For the optimizer's own series.
	Hourly         []float64 `json:"hourly"`
	ProjectedMonth float64   `json:"projected_monthly_cost"`
}

// Meta says where the figures came from; object responses carry it as "meta".
type Meta struct {
	Source             string            `json:"source"`
	SinceExporterStart bool              `json:"since_exporter_start"`
	WindowStart        time.Time         `json:"window_start"`
	WindowEnd          time.Time         `json:"window_end"`
	WindowSeconds      float64           `json:"window_seconds"`
	GeneratedAt        time.Time         `json:"generated_at"`
	AgeSeconds         float64           `json:"age_seconds"`
	Stale              bool              `json:"stale,omitempty"`
	Error              string            `json:"error,omitempty"`
	Missing            map[string]string `json:"missing,omitempty"`
	// RecordingRules are the recording rules' series the Prometheus source
	// read instead of the raw series (prometheus/rules/usage-recording.yml).
	RecordingRules []string `json:"recording_rules,omitempty"`
	// UnpricedCalls could not be priced (by reason): the costs leave them
	// out, so they are a floor. UnpricedSharePercent is their share of calls.
	UnpricedCalls        map[string]float64 `json:"unpriced_calls"`
	UnpricedSharePercent float64            `json:"unpriced_share_percent"`
}

// ServiceSummary is a service in the overview.
type ServiceSummary struct {
	Calls        float64  `json:"calls"`
	Cost         float64  `json:"cost"`
	AvgLatencyMs *float64 `json:"avg_latency_ms"`
	UniqueUsers  int      `json:"unique_users"`
}

// Overview is GET /overview.
type Overview struct {
	TotalAPICalls float64                   `json:"total_api_calls"`
	TotalCost     float64                   `json:"total_cost"`
	CostPerCall   float64                   `json:"cost_per_call"`
	PeriodStart   string                    `json:"period_start"`
	PeriodEnd     string                    `json:"period_end"`
	ByService     map[string]ServiceSummary `json:"by_service"`
	// ByUserCount counts the distinct users (the exporter's count of every
	// user, labelled or not, when it has one); requests without a user are
	// the anonymous figures, those of users without a label of their own
	// (past the exporter's users.max_users) the other figures.
	ByUserCount    int     `json:"by_user_count"`
	AnonymousCalls float64 `json:"anonymous_calls"`
	AnonymousCost  float64 `json:"anonymous_cost"`
	OtherCalls     float64 `json:"other_users_calls"`
	OtherCost      float64 `json:"other_users_cost"`
	Meta           *Meta   `json:"meta,omitempty"`
}

// HourCalls is a peak hour.
type HourCalls struct {
	Hour  int     `json:"hour"`
	Calls float64 `json:"calls"`
}

// DayCalls is a peak day of the week.
type DayCalls struct {
	Day   string  `json:"day"`
	Calls float64 `json:"calls"`
}

// EndpointRow is a popular endpoint.
type EndpointRow struct {
	Endpoint     string   `json:"endpoint"`
	Service      string   `json:"api_service"`
	Calls        float64  `json:"calls"`
	AvgLatencyMs *float64 `json:"avg_latency_ms"`
	ErrorRate    float64  `json:"error_rate"`
}

// Trends are the daily series.
type Trends struct {
	DailyCalls []float64 `json:"daily_calls"`
	DailyCosts []float64 `json:"daily_costs"`
	Dates      []string  `json:"dates"`
}

// Patterns is GET /patterns.
type Patterns struct {
	PeakHours        []HourCalls   `json:"peak_hours"`
	PeakDays         []DayCalls    `json:"peak_days"`
	PopularEndpoints []EndpointRow `json:"popular_endpoints"`
	UsageTrends      Trends        `json:"usage_trends"`
	Meta             *Meta         `json:"meta,omitempty"`
}

// UserRow is an element of GET /by-user.
type UserRow struct {
	UserID           string             `json:"user_id"`
	Username         string             `json:"username"`
	TotalCalls       float64            `json:"total_calls"`
	TotalCost        float64            `json:"total_cost"`
	TotalTokens      float64            `json:"total_tokens"`
	ByService        map[string]float64 `json:"by_service"`
	SubscriptionTier string             `json:"subscription_tier"`
	QuotaUsedPercent float64            `json:"quota_used_percent"`
}

// ServiceRow is an element of GET /by-service.
type ServiceRow struct {
	ServiceName   string   `json:"service_name"`
	TotalCalls    float64  `json:"total_calls"`
	TotalCost     float64  `json:"total_cost"`
	AvgLatencyMs  *float64 `json:"avg_latency_ms"`
	SuccessRate   float64  `json:"success_rate"`
	ErrorRate     float64  `json:"error_rate"`
	UniqueUsers   int      `json:"unique_users"`
	DuplicateRate float64  `json:"duplicate_rate"`
	Bytes         float64  `json:"response_bytes"`
}

// DayCost is a point of the cost trend.
type DayCost struct {
	Date string  `json:"date"`
	Cost float64 `json:"cost"`
}

// Costs is GET /costs.
type Costs struct {
	TotalCost            float64            `json:"total_cost"`
	CostBreakdown        map[string]float64 `json:"cost_breakdown"`
	CostTrends           []DayCost          `json:"cost_trends"`
	ProjectedMonthlyCost float64            `json:"projected_monthly_cost"`
	// CostPerUser is the identified users' cost over their number; the
	// anonymous requests' cost is apart.
	CostPerUser   float64 `json:"cost_per_user"`
	AnonymousCost float64 `json:"anonymous_cost"`
	// UnpricedCalls could not be priced: the costs leave them out.
	UnpricedCalls        float64            `json:"unpriced_calls"`
	UnpricedSharePercent float64            `json:"unpriced_share_percent"`
	CostPerService       map[string]float64 `json:"cost_per_service"`
	CostByModel          map[string]float64 `json:"cost_by_model"`
	EgressCost           float64            `json:"egress_cost"`
	// Storage is what the exporter's measured volumes cost: over the
	// window in cost_breakdown["storage"] and StorageCost, a month in
	// StorageMonthlyCost. TotalCost is the calls' cost alone.
	StorageCost        float64                  `json:"storage_cost"`
	StorageMonthlyCost float64                  `json:"storage_monthly_cost"`
	StorageByVolume    map[string]StorageVolume `json:"storage_by_volume,omitempty"`
	// CostByOrg is calls and cost by organisation, with the even share of
	// the infrastructure cost when costs.split_infrastructure_across_orgs.
	CostByOrg map[string]OrgCost `json:"cost_by_org,omitempty"`
	Meta      *Meta              `json:"meta,omitempty"`
}

// OrgCost is one organisation's part of the costs.
type OrgCost struct {
	Calls float64 `json:"calls"`
	Cost  float64 `json:"cost"`
	// SharedInfrastructureCost is its even share of the window's
	// infrastructure cost (organisations with a label of their own only).
	SharedInfrastructureCost float64 `json:"shared_infrastructure_cost"`
	TotalCost                float64 `json:"total_cost"`
}

// StorageVolume is one volume's size and monthly cost.
type StorageVolume struct {
	Bytes       float64 `json:"bytes"`
	MonthlyCost float64 `json:"monthly_cost"`
}

// RecommendationRow is a recommendation in the old shape plus the new fields.
type RecommendationRow struct {
	Recommendation
	PotentialSavings string `json:"potential_savings"`
}

// Optimization is GET /optimization.
type Optimization struct {
	Recommendations             []RecommendationRow `json:"recommendations"`
	TotalPotentialSavings       float64             `json:"total_potential_savings"`
	TotalRevenueOpportunity     float64             `json:"total_revenue_opportunity"`
	EstimatedImplementationTime string              `json:"estimated_implementation_time"`
	// Skipped are types the data could not support; NothingFound types
	// evaluated that found nothing, with the figure that fell short.
	Skipped      []Skipped `json:"skipped"`
	NothingFound []Skipped `json:"nothing_found"`
	Meta         *Meta     `json:"meta,omitempty"`
}

// EndpointPerformance is an endpoint in GET /performance.
type EndpointPerformance struct {
	AvgLatencyMs *float64 `json:"avg_latency_ms"`
	SuccessRate  float64  `json:"success_rate"`
	ErrorRate    float64  `json:"error_rate"`
	Calls        float64  `json:"calls"`
}

// ServicePerformance is a service in GET /performance.
type ServicePerformance struct {
	Calls        float64  `json:"calls"`
	AvgLatencyMs *float64 `json:"avg_latency_ms"`
	P50LatencyMs *float64 `json:"p50_latency_ms"`
	P95LatencyMs *float64 `json:"p95_latency_ms"`
	P99LatencyMs *float64 `json:"p99_latency_ms"`
	SuccessRate  float64  `json:"success_rate"`
	ErrorRate    float64  `json:"error_rate"`
}

// Performance is GET /performance. Quantiles come from the request-time
// histogram (interpolated within buckets), not from the mean.
type Performance struct {
	AvgLatencyMs *float64                       `json:"avg_latency_ms"`
	P50LatencyMs *float64                       `json:"p50_latency_ms"`
	P95LatencyMs *float64                       `json:"p95_latency_ms"`
	P99LatencyMs *float64                       `json:"p99_latency_ms"`
	SuccessRate  float64                        `json:"success_rate"`
	ErrorRate    float64                        `json:"error_rate"`
	TimeoutRate  float64                        `json:"timeout_rate"`
	ByEndpoint   map[string]EndpointPerformance `json:"by_endpoint"`
	// ByService are the quantiles per api_service.
	ByService map[string]ServicePerformance `json:"by_service"`
	Meta      *Meta                         `json:"meta,omitempty"`
}

// TierQuota is a tier in GET /quotas. The old fields keep their meaning:
// limit and tokens_limit are the plan's per-user limits, used and
// tokens_used what its users used on average in the current billing
// period, percentage the one of the other. The pooled fields are the
// tier's users together: their total against per-user limit x users.
type TierQuota struct {
	Used              float64 `json:"used"`
	Limit             any     `json:"limit"`
	Percentage        float64 `json:"percentage"`
	TokensUsed        float64 `json:"tokens_used"`
	TokensLimit       any     `json:"tokens_limit"`
	Users             int     `json:"users"`
	PooledUsed        float64 `json:"pooled_used"`
	PooledLimit       any     `json:"pooled_limit"`
	PooledPercentage  float64 `json:"pooled_percentage"`
	PooledTokensUsed  float64 `json:"pooled_tokens_used"`
	PooledTokensLimit any     `json:"pooled_tokens_limit"`
	UsersOverQuota    int     `json:"users_over_quota"`
	PeriodStart       string  `json:"period_start,omitempty"`
	PeriodEnd         string  `json:"period_end,omitempty"`
}
