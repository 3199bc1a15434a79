// Package window holds what the exporter serves of a window of log time
// (GET /api/v1/window?days=N, from its rollups) and the optimizer reads:
// the figures of its lines by service, route, model, tier and user, the
// hourly and daily profiles, and request-time sketches.
package window

import "time"

// Window is the usage of the lines whose log time falls in [Start, End).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Oldest and Newest are the times of the oldest and newest line the
	// window holds (zero when it holds none).
	Oldest time.Time `json:"oldest"`
	Newest time.Time `json:"newest"`
	// Days is the number of UTC days of the window.
	Days int `json:"days"`

	Services map[string]*Service `json:"services"`
	Routes   []Route             `json:"routes"`
	// Models are keyed by model, each with its cost by service.
	Models map[string]*Model `json:"models"`
	Tiers  map[string]*Tier  `json:"tiers"`
	// Users are the labelled users (and __other__, __anonymous__).
	Users map[string]*User `json:"users"`
	// UniqueUsers counts the distinct users with calls in the window,
	// labelled or not, within DistinctError (a sketch's estimate).
	UniqueUsers int `json:"unique_users"`
	// Unpriced are calls that could not be priced, by reason.
	Unpriced map[string]float64 `json:"unpriced"`

	// Hourly are calls by hour of day (UTC), overall and by service.
	Hourly          []float64            `json:"hourly"`
	HourlyByService map[string][]float64 `json:"hourly_by_service"`
	Daily           []Day                `json:"daily"`

	// StorageBytes are the exporter's storage volumes as last measured
	// (not a window: what is stored now), by volume.
	StorageBytes map[string]float64 `json:"storage_bytes,omitempty"`
}

// Service is one api_service's figures.
type Service struct {
	Calls      float64 `json:"calls"`
	Errors     float64 `json:"errors"`
	Timeouts   float64 `json:"timeouts"`
	Duplicates float64 `json:"duplicates"`
	// Cost is model and per-call cost; PerCallCost the per-call part.
	Cost         float64 `json:"cost"`
	PerCallCost  float64 `json:"per_call_cost"`
	Egress       float64 `json:"egress"`
	Bytes        float64 `json:"bytes"`
	LatencySum   float64 `json:"latency_sum"`
	LatencyCount float64 `json:"latency_count"`
	Latency      *Sketch `json:"latency"`
	// UniqueUsers counts the service's distinct users, as Window's.
	UniqueUsers int `json:"unique_users"`
}

// Route is one route's figures.
type Route struct {
	Route        string  `json:"route"`
	Service      string  `json:"api_service"`
	Calls        float64 `json:"calls"`
	Errors       float64 `json:"errors"`
	LatencySum   float64 `json:"latency_sum"`
	LatencyCount float64 `json:"latency_count"`
}

// Model is one model's figures.
type Model struct {
	Calls    float64 `json:"calls"`
	Failures float64 `json:"failures"`
	// Tokens by direction: input, output, cache_read, cache_write, reasoning.
	Tokens map[string]float64 `json:"tokens"`
	Cost   float64            `json:"cost"`
	// CostByService splits Cost by api_service.
	CostByService map[string]float64 `json:"cost_by_service"`
	// Prompts count the calls with token counts by prompt size: simple
	// (under 500 tokens), medium (under 2,000), complex.
	Prompts Prompts `json:"prompts"`
}

// Prompts are prompt-size classes.
type Prompts struct {
	Simple  float64 `json:"simple"`
	Medium  float64 `json:"medium"`
	Complex float64 `json:"complex"`
}

// Tier is one plan tier's figures.
type Tier struct {
	Calls float64 `json:"calls"`
	Cost  float64 `json:"cost"`
}

// User is one user's figures; Tier is the tier of their last day.
type User struct {
	Tier      string             `json:"tier"`
	Calls     float64            `json:"calls"`
	Cost      float64            `json:"cost"`
	Tokens    float64            `json:"tokens"`
	ByService map[string]float64 `json:"by_service"`
}

// Day is one UTC day's calls and cost (model, per-call and egress).
type Day struct {
	Date  string  `json:"date"`
	Calls float64 `json:"calls"`
	Cost  float64 `json:"cost"`
}

// Token directions, in the order the rollups keep them.
var Directions = [5]string{"input", "output", "cache_read", "cache_write", "reasoning"}

// Prompt-size classes, in prompt tokens.
const (
	SimpleBelow = 500
	ComplexFrom = 2000
)

// AnonymousUser is the user label of requests without a user, OtherUser
// that of the users without a label of their own: reported, but not users.
const (
	AnonymousUser = "__anonymous__"
	OtherUser     = "__other__"
)
