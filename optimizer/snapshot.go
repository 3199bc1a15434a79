// Package optimizer reads usage over a window, from Prometheus or from the
// exporter's own /metrics, decides what would save money, and serves the
// result as info series and as the JSON of the analytics API it replaces.
//
// The analysis (Recommend and the utilities) is pure: a function of a
// Snapshot, the price table, the plans and the thresholds.
package optimizer

import (
	"math"

	"sort"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/window"
)

// Snapshot is usage over a window of Days days, as a Source reports it.
type Snapshot struct {
	Days       int
	Start, End time.Time
	// Window is End - Start: Days days, or the exporter's uptime.
	Window time.Duration
	// SinceStart is true when the figures are the exporter's totals since it
	// started rather than a window (the exporter source).
	SinceStart bool
	// Source names where the figures came from.
	Source string

	Services  map[string]*ServiceUsage
	Endpoints map[string]*EndpointUsage
	Models    map[string]*ModelUsage
	// Users are the users with a label of their own. Requests without a
	// user are Anonymous, those of users without a label of their own (past
	// the exporter's users.max_users) Other: reported, never users.
	Users     map[string]*UserUsage
	Anonymous *UserUsage
	Other     *UserUsage
	// UniqueUsers counts the distinct users of the window, labelled or
	// not (the exporter's sketch); 0 when unknown.
	UniqueUsers int
	Quotas      []QuotaUse

	// Hourly are calls by hour of day (UTC) over the window, and by
	// api_service (nil when unknown).
	Hourly          []float64
	HourlyByService map[string][]float64
	// Daily are calls and cost per day, oldest first (nil when unknown).
	Daily []DayUsage

	// Unpriced are calls that could not be priced, by reason
	// (usage_exporter_unpriced_requests_total): their cost is unknown, not 0.
	Unpriced map[string]float64

	Latency Latency // over all requests
	// GPU utilisation, when Prometheus has DCGM or nvidia exporter series.
	GPU *GPUUsage
	// Orgs are calls and cost by organisation (usage_org_*; __other__ holds
	// those past the exporter's orgs.max_orgs). Nil when the source has
	// none: the exporter's rollups keep no organisations.
	Orgs map[string]*OrgUsage
	// SharedInfrastructureHourly is split evenly among the active
	// organisations (the engine sets it from costs when configured).
	SharedInfrastructureHourly float64
	// StorageBytes are the exporter's storage volumes (usage_storage_bytes:
	// the window's mean from Prometheus, the last measurement from the
	// exporter), by volume; StoragePerGBMonth prices them (the engine sets
	// it from pricing.storage_per_gb_month).
	StorageBytes      map[string]float64
	StoragePerGBMonth float64
	// Missing lists data the source could not provide, with the reason.
	Missing map[string]string
	// RecordingRules are the recorded series read instead of raw ones.
	RecordingRules []string
}

// ServiceUsage is one api_service's traffic.
type ServiceUsage struct {
	Calls, Errors, Timeouts float64
	Cost                    float64            // model and per-call costs
	ModelCost               map[string]float64 // of Cost, by model ("" for per-call)
	Egress                  float64
	Bytes                   float64
	Duplicates              float64
	LatencySum              float64 // seconds
	LatencyCount            float64
	// P50, P95 and P99 are the service's request-time quantiles in seconds
	// (NaN when unknown).
	P50, P95, P99 float64
	UniqueUsers   int
}

// EndpointUsage is one route's traffic.
type EndpointUsage struct {
	Service                  string
	Calls, Errors            float64
	LatencySum, LatencyCount float64
}

// ModelUsage is one model's traffic.
type ModelUsage struct {
	Calls, Failures float64
	// Tokens by direction: input, output, cache_read, cache_write, reasoning.
	Tokens map[string]float64
	Cost   float64
	// PromptTokens is the histogram of prompt sizes: upper bound -> cumulative count.
	PromptTokens map[float64]float64
}

// InputTokens are the prompt-side tokens: input and cache reads and writes.
func (m *ModelUsage) InputTokens() float64 {
	return m.Tokens["input"] + m.Tokens["cache_read"] + m.Tokens["cache_write"]
}

// OutputTokens are output and reasoning tokens.
func (m *ModelUsage) OutputTokens() float64 { return m.Tokens["output"] + m.Tokens["reasoning"] }

// UserUsage is one user's traffic.
type UserUsage struct {
	Tier      string
	Calls     float64
	Cost      float64
	Tokens    float64
	ByService map[string]float64 // calls
}

// QuotaUse is a user's use of the current billing period.
type QuotaUse struct {
	User, Tier  string
	Calls       float64
	Tokens      float64
	PeriodStart time.Time
	PeriodEnd   time.Time
	Observed    time.Time // when the figures were read
}

// DayUsage is one day's traffic.
type DayUsage struct {
	Date  time.Time
	Calls float64
	Cost  float64
}

// Latency are request-time figures in seconds; NaN when unknown.
type Latency struct {
	Avg, P50, P95, P99 float64
}

// GPUUsage is mean utilisation (0-1) over the window, and the GPU count.
type GPUUsage struct {
	Utilization float64
	GPUs        int
	Metric      string
}

// TotalCalls sums the calls of every service.
func (s *Snapshot) TotalCalls() float64 {
	var n float64
	for _, sv := range s.Services {
		n += sv.Calls
	}
	return n
}

// UnpricedCalls sums the calls that could not be priced.
func (s *Snapshot) UnpricedCalls() float64 {
	var n float64
	for _, v := range s.Unpriced {
		n += v
	}
	return n
}

// TotalCost sums every service's cost and egress.
func (s *Snapshot) TotalCost() float64 {
	var c float64
	for _, sv := range s.Services {
		c += sv.Cost + sv.Egress
	}
	return c
}

// averageLatency sets Latency.Avg from the services' sums and counts.
func (s *Snapshot) averageLatency() {
	var sum, count float64
	for _, sv := range s.Services {
		sum += sv.LatencySum
		count += sv.LatencyCount
	}
	if count > 0 {
		s.Latency.Avg = sum / count
	}
}

// Monthly scales a figure of the window to 30 days.
func (s *Snapshot) Monthly(v float64) float64 {
	if s.Window <= 0 {
		return v
	}
	return v * (30 * 24 * time.Hour).Hours() / s.Window.Hours()
}

// OrgUsage is one organisation's calls and cost over the window.
type OrgUsage struct {
	Calls, Cost float64
}

// org returns the organisation's usage, created on first use.
func (s *Snapshot) org(name string) *OrgUsage {
	if s.Orgs == nil {
		s.Orgs = map[string]*OrgUsage{}
	}
	o := s.Orgs[name]
	if o == nil {
		o = &OrgUsage{}
		s.Orgs[name] = o
	}
	return o
}

func newSnapshot(days int, now time.Time) *Snapshot {
	window := time.Duration(days) * 24 * time.Hour
	return &Snapshot{
		Days: days, Start: now.Add(-window), End: now, Window: window,
		Services:  map[string]*ServiceUsage{},
		Endpoints: map[string]*EndpointUsage{},
		Models:    map[string]*ModelUsage{},
		Users:     map[string]*UserUsage{},
		Missing:   map[string]string{},
		Unpriced:  map[string]float64{},
		Latency:   Latency{Avg: math.NaN(), P50: math.NaN(), P95: math.NaN(), P99: math.NaN()},
	}
}

func (s *Snapshot) service(name string) *ServiceUsage {
	sv := s.Services[name]
	if sv == nil {
		sv = &ServiceUsage{ModelCost: map[string]float64{}, P50: math.NaN(), P95: math.NaN(), P99: math.NaN()}
		s.Services[name] = sv
	}
	return sv
}

func (s *Snapshot) endpoint(route, service string) *EndpointUsage {
	ep := s.Endpoints[route]
	if ep == nil {
		ep = &EndpointUsage{Service: service}
		s.Endpoints[route] = ep
	}
	return ep
}

func (s *Snapshot) model(name string) *ModelUsage {
	m := s.Models[name]
	if m == nil {
		m = &ModelUsage{Tokens: map[string]float64{}, PromptTokens: map[float64]float64{}}
		s.Models[name] = m
	}
	return m
}

// AnonymousUser is the user label of requests without a user, OtherUser
// that of users without a label of their own.
const (
	AnonymousUser = window.AnonymousUser
	OtherUser     = window.OtherUser
)

// folded reports whether a user label stands for many users, or none.
func folded(user string) bool { return user == AnonymousUser || user == OtherUser }

func (s *Snapshot) user(name, tier string) *UserUsage {
	switch name {
	case AnonymousUser:
		if s.Anonymous == nil {
			s.Anonymous = &UserUsage{Tier: tier, ByService: map[string]float64{}}
		}
		return s.Anonymous
	case OtherUser:
		if s.Other == nil {
			s.Other = &UserUsage{Tier: tier, ByService: map[string]float64{}}
		}
		return s.Other
	}
	u := s.Users[name]
	if u == nil {
		u = &UserUsage{Tier: tier, ByService: map[string]float64{}}
		s.Users[name] = u
	}
	return u
}

// countLabelledUsers counts each service's users from the labelled ones,
// for sources without the exporter's count: a lower bound when users are
// folded under __other__, which Missing says.
func (s *Snapshot) countLabelledUsers() {
	for _, u := range s.Users {
		for svc, n := range u.ByService {
			if n > 0 {
				s.service(svc).UniqueUsers++
			}
		}
	}
	if s.Other != nil && s.Other.Calls > 0 {
		s.Missing["users"] = "users past the exporter's users.max_users are folded into __other__: user counts are of the labelled users only (the exporter source, with rollups, counts every user)"
	}
}

// userCount is the number of distinct users: the exporter's count when it
// has one, else the labelled users (a lower bound when some are folded).
func (s *Snapshot) userCount() int {
	if s.UniqueUsers > 0 {
		return max(s.UniqueUsers, len(s.Users))
	}
	return len(s.Users)
}

func sortDays(d []DayUsage) {
	sort.Slice(d, func(i, j int) bool { return d[i].Date.Before(d[j].Date) })
}

// quotaSet gathers usage_quota_used series into QuotaUse values.
type quotaSet struct {
	start, end float64 // the period, unix seconds
	byUser     map[[2]string]*QuotaUse
}

func (qs *quotaSet) add(user, tier, resource string, v float64) {
	if folded(user) {
		return // many users' sum: no one's quota
	}
	if qs.byUser == nil {
		qs.byUser = map[[2]string]*QuotaUse{}
	}
	k := [2]string{user, tier}
	q := qs.byUser[k]
	if q == nil {
		q = &QuotaUse{User: user, Tier: tier}
		qs.byUser[k] = q
	}
	if resource == "tokens" {
		q.Tokens = v
	} else {
		q.Calls = v
	}
}

// list returns the uses sorted by tier and user, observed at now. Without
// the end gauge the period is taken as a month.
func (qs *quotaSet) list(now time.Time) []QuotaUse {
	var out []QuotaUse
	for _, q := range qs.byUser {
		q.Observed = now
		if qs.start > 0 {
			q.PeriodStart = unixTime(qs.start)
			q.PeriodEnd = q.PeriodStart.AddDate(0, 1, 0)
			if qs.end > qs.start {
				q.PeriodEnd = unixTime(qs.end)
			}
		}
		out = append(out, *q)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tier != out[j].Tier {
			return out[i].Tier < out[j].Tier
		}
		return out[i].User < out[j].User
	})
	return out
}
