package optimizer

import (
	"math"
	"sort"

	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// ModelCost is the cost of in input and out output tokens on a price
// entry, at its base rates. It sums per million tokens and divides once.
func ModelCost(e *pricing.Entry, in, out float64) float64 {
	return (in**e.Input + out**e.Output) / 1e6
}

// ModelQuote is one model's price for a token mix.
type ModelQuote struct {
	Model   string   `json:"model"`
	Cost    float64  `json:"cost"`
	Quality *float64 `json:"quality"`
}

// CompareModels prices in and out tokens on every priced model, cheapest
// first (ties by name).
func CompareModels(t *pricing.Table, in, out float64) []ModelQuote {
	var qs []ModelQuote
	for _, k := range t.Keys() {
		e, _ := t.Entry(k)
		if !e.Priced() {
			continue
		}
		qs = append(qs, ModelQuote{Model: k, Cost: ModelCost(e, in, out), Quality: e.Quality})
	}
	sort.SliceStable(qs, func(i, j int) bool { return qs[i].Cost < qs[j].Cost })
	return qs
}

// Caching is the arithmetic of a response cache.
type Caching struct {
	Calls          float64 `json:"calls"`
	DuplicateRate  float64 `json:"duplicate_rate"`
	CostPerCall    float64 `json:"cost_per_call"`
	HitRate        float64 `json:"hit_rate"`
	Cacheable      float64 `json:"cacheable_calls"`
	Saved          float64 `json:"saved_calls"`
	Gross          float64 `json:"gross_savings"`
	Infrastructure float64 `json:"infrastructure_cost"`
	Net            float64 `json:"net_savings"`
	ROIPercent     float64 `json:"roi_percent"`
}

// CachingSavings: of calls, the duplicate rate are cacheable; the hit rate
// of those are saved at costPerCall each; the cache costs infrastructure.
// 50,000 calls, 35%, $0.002, 80%, $10 -> 17,500 / 14,000 / $28 / $10 / $18 / 180%.
func CachingSavings(calls, duplicateRate, costPerCall, hitRate, infrastructure float64) Caching {
	c := Caching{Calls: calls, DuplicateRate: duplicateRate, CostPerCall: costPerCall, HitRate: hitRate,
		Infrastructure: infrastructure}
	c.Cacheable = math.Round(calls * duplicateRate)
	c.Saved = math.Round(c.Cacheable * hitRate)
	c.Gross = cents(c.Saved * costPerCall)
	c.Net = cents(c.Gross - infrastructure)
	if infrastructure > 0 {
		c.ROIPercent = math.Round(c.Net/infrastructure*1000) / 10
	}
	return c
}

func cents(v float64) float64 { return math.Round(v*100) / 100 }

func tenths(v float64) float64 { return math.Round(v*10) / 10 }

// PlanFit is the plan tier monthly usage fits.
type PlanFit struct {
	Tier              string  `json:"tier"`
	MonthlyPrice      float64 `json:"monthly_price"`
	CallsUtilization  float64 `json:"calls_utilization_percent"`
	TokensUtilization float64 `json:"tokens_utilization_percent"`
	BufferPercent     float64 `json:"buffer_percent"`
	CallsLimit        any     `json:"calls_limit"`
	TokensLimit       any     `json:"tokens_limit"`
	FitsNoLimitedTier bool    `json:"fits_no_limited_tier,omitempty"`
}

// tiersByPrice orders tiers cheapest first, unlimited ones last.
func tiersByPrice(p plans.Config) []plans.Tier {
	ts := append([]plans.Tier(nil), p.Tiers...)
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].MonthlyPrice < ts[j].MonthlyPrice })
	return ts
}

func fits(l plans.Limit, used float64) bool { return l.IsUnlimited() || used <= float64(l) }

func utilization(l plans.Limit, used float64) float64 {
	if l.IsUnlimited() || l == 0 {
		return 0
	}
	return used / float64(l) * 100
}

func limitJSON(l plans.Limit) any {
	if l.IsUnlimited() {
		return "unlimited"
	}
	return int64(l)
}

// PlanTier returns the cheapest tier whose call and token limits both fit a
// month's usage, with its utilisation and the buffer left (100 - the higher
// utilisation). 125,000 calls and 18.4M tokens -> professional, $49,
// 41.7% calls, 36.8% tokens, 58.3% buffer.
func PlanTier(p plans.Config, calls, tokens float64) (PlanFit, bool) {
	for _, t := range tiersByPrice(p) {
		if t.Calls == nil || t.Tokens == nil || !fits(*t.Calls, calls) || !fits(*t.Tokens, tokens) {
			continue
		}
		cu, tu := utilization(*t.Calls, calls), utilization(*t.Tokens, tokens)
		return PlanFit{Tier: t.Name, MonthlyPrice: t.MonthlyPrice, CallsUtilization: tenths(cu), TokensUtilization: tenths(tu),
			BufferPercent: tenths(100 - math.Max(cu, tu)), CallsLimit: limitJSON(*t.Calls), TokensLimit: limitJSON(*t.Tokens)}, true
	}
	return PlanFit{}, false
}

// Complexity is the split of prompts by size: simple under 500 tokens,
// medium 500 to 2,000, complex 2,000 and more.
type Complexity struct {
	Requests       float64 `json:"requests"`
	SimplePercent  float64 `json:"simple_percent"`
	MediumPercent  float64 `json:"medium_percent"`
	ComplexPercent float64 `json:"complex_percent"`
	Recommendation string  `json:"recommendation"`
	// RoutingSavings is the monthly saving of routing simple queries to
	// the cheapest adequate model, when the caller priced it.
	RoutingSavings float64 `json:"smart_routing_savings,omitempty"`
}

// Complexity boundaries, in prompt tokens.
const (
	SimpleTokens  = 500
	ComplexTokens = 2000
)

// QueryComplexity splits a cumulative prompt-size histogram (upper bound ->
// requests at or below it). A histogram bucket's bound is inclusive, so a
// prompt of exactly 500 tokens counts as simple.
func QueryComplexity(h map[float64]float64) Complexity {
	total := h[math.Inf(1)]
	for _, v := range h {
		total = math.Max(total, v)
	}
	c := Complexity{Requests: total}
	if total == 0 {
		c.Recommendation = "no prompt sizes recorded"
		return c
	}
	// Simple is under SimpleTokens, complex at least ComplexTokens: token
	// counts are whole, so the exporter's buckets end at 499 and 1999.
	simple, medium := cumulativeAt(h, SimpleTokens-1), cumulativeAt(h, ComplexTokens-1)
	c.SimplePercent = tenths(simple / total * 100)
	c.MediumPercent = tenths((medium - simple) / total * 100)
	c.ComplexPercent = tenths((total - medium) / total * 100)
	switch {
	case c.SimplePercent >= 40:
		c.Recommendation = "route simple queries (under 500 tokens) to a smaller, cheaper model"
	case c.ComplexPercent >= 50:
		c.Recommendation = "most queries are complex: keep a high-quality model, consider prompt caching"
	default:
		c.Recommendation = "mixed workload: route by prompt size"
	}
	return c
}

// cumulativeAt is the count at the largest bucket bound not above x.
func cumulativeAt(h map[float64]float64, x float64) float64 {
	best, v := math.Inf(-1), 0.0
	for le, n := range h {
		if le <= x && le > best {
			best, v = le, n
		}
	}
	return v
}
