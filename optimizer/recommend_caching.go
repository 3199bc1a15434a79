package optimizer

import (
	"fmt"
	"maps"
	"slices"
)

// costPerCall is a service's monthly cost over its monthly calls.
func costPerCall(sv *ServiceUsage) float64 {
	if sv.Calls == 0 {
		return 0
	}
	return sv.Cost / sv.Calls
}

func (a *analysis) caching() {
	found := false
	for _, name := range slices.Sorted(maps.Keys(a.s.Services)) {
		sv := a.s.Services[name]
		if sv.Calls == 0 || sv.Duplicates == 0 {
			continue
		}
		found = true
		d := sv.Duplicates / sv.Calls
		if d <= a.cfg.Caching.MinDuplicateRate {
			a.none(TypeCaching, "%s: duplicate rate %.1f%%, not over %.0f%%", name, d*100, a.cfg.Caching.MinDuplicateRate*100)
			continue
		}
		c := CachingSavings(a.s.Monthly(sv.Calls), d, costPerCall(sv), a.cfg.Caching.HitRate, a.cfg.Caching.InfrastructureMonthly)
		if c.Net <= 0 {
			a.none(TypeCaching, "%s: $%.2f/month saved does not pay for the cache ($%.2f)", name, c.Gross, c.Infrastructure)
			continue
		}
		a.add(Recommendation{Type: TypeCaching, Current: "No response caching for " + name,
			Recommended: "Enable Redis caching for " + name, Savings: c.Net, Effort: "low",
			claims: a.serviceClaims(name, c.Gross), overhead: c.Infrastructure,
			Impact:   fmt.Sprintf("Reduce API calls by %.0f%%", c.Saved/c.Calls*100),
			Evidence: map[string]any{"duplicate_rate_percent": tenths(d * 100), "caching": c}}, false)
	}
	if !found {
		a.skip(TypeCaching, "no duplicate counts (usage_duplicate_requests_total: lines need a cache_key or request_hash)")
	}
}

func (a *analysis) semanticCaching() {
	sv := a.s.Services[a.cfg.Caching.SemanticService]
	if sv == nil || sv.Calls == 0 || sv.Duplicates == 0 {
		a.skip(TypeSemanticCaching, "no duplicate counts for the %s service", a.cfg.Caching.SemanticService)
		return
	}
	d := sv.Duplicates / sv.Calls
	if d < a.cfg.Caching.SemanticMinDuplicateRate {
		a.none(TypeSemanticCaching, "%s: exact duplicate rate %.1f%%, under %.0f%%", a.cfg.Caching.SemanticService, d*100,
			a.cfg.Caching.SemanticMinDuplicateRate*100)
		return
	}
	near := a.cfg.Caching.SemanticFraction * d
	c := CachingSavings(a.s.Monthly(sv.Calls), near, costPerCall(sv), a.cfg.Caching.HitRate, a.cfg.Caching.VectorStoreMonthly)
	if c.Net <= 0 {
		a.none(TypeSemanticCaching, "$%.2f/month saved does not pay for the vector store ($%.2f)", c.Gross, c.Infrastructure)
		return
	}
	a.add(Recommendation{Type: TypeSemanticCaching, Current: "exact-match caching only",
		Recommended: "semantic cache for " + a.cfg.Caching.SemanticService, Savings: c.Net, Effort: "medium",
		claims: a.serviceClaims(a.cfg.Caching.SemanticService, c.Gross), overhead: c.Infrastructure,
		Impact: fmt.Sprintf("about %.0f%% more calls answered from cache", near*100),
		Evidence: map[string]any{"exact_duplicate_rate_percent": tenths(d * 100),
			"assumption": fmt.Sprintf("near-duplicates add %.0f%% of the exact duplicate rate (not measured)", a.cfg.Caching.SemanticFraction*100),
			"caching":    c}}, false)
}
