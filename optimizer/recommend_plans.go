package optimizer

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/usage-exporter/usage-exporter/plans"
)

// projection is a user's use projected to the end of the billing period at
// the rate so far.
func projection(q QuotaUse) (calls, tokens float64, ok bool) {
	total := q.PeriodEnd.Sub(q.PeriodStart)
	elapsed := q.Observed.Sub(q.PeriodStart)
	if total <= 0 || elapsed <= 0 {
		return 0, 0, false
	}
	f := math.Min(float64(elapsed)/float64(total), 1)
	return q.Calls / f, q.Tokens / f, true
}

func (a *analysis) tierUse() map[string][]QuotaUse {
	by := map[string][]QuotaUse{}
	for _, q := range a.s.Quotas {
		by[q.Tier] = append(by[q.Tier], q)
	}
	return by
}

func (a *analysis) planUpgrade() {
	if len(a.s.Quotas) == 0 {
		a.skip(TypePlanUpgrade, "no quota use (usage_quota_used)")
		return
	}
	type move struct{ from, to string }
	groups := map[move][]string{}
	revenue := map[move]float64{}
	for _, q := range a.s.Quotas {
		t, ok := a.plans.Lookup(q.Tier)
		if !ok || t.Calls == nil || t.Tokens == nil {
			continue
		}
		pc, pt, ok := projection(q)
		if !ok {
			continue
		}
		over := !fits(*t.Calls, q.Calls) || !fits(*t.Tokens, q.Tokens) || !fits(*t.Calls, pc) || !fits(*t.Tokens, pt)
		if !over {
			continue
		}
		fit, ok := PlanTier(a.plans, pc, pt)
		if !ok || fit.Tier == t.Name || fit.MonthlyPrice <= t.MonthlyPrice {
			continue
		}
		m := move{t.Name, fit.Tier}
		groups[m] = append(groups[m], q.User)
		revenue[m] += fit.MonthlyPrice - t.MonthlyPrice
	}
	if len(groups) == 0 {
		a.none(TypePlanUpgrade, "no user over, or projected over, their tier's quota (%d users)", len(a.s.Quotas))
	}
	for m, users := range groups {
		sort.Strings(users)
		a.add(Recommendation{Type: TypePlanUpgrade, Revenue: true, Current: m.from, Recommended: m.to, Savings: revenue[m],
			Group:  "revenue:" + m.from,
			Effort: "low", Impact: fmt.Sprintf("%d users over (or projected over) their %s quota", len(users), m.from),
			Evidence: map[string]any{"users": firstN(users, 20), "user_count": len(users)}}, false)
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxUtilization is the higher of a user's projected call and token use,
// as a share of the tier's limits; ok is false for unlimited tiers.
func maxUtilization(t plans.Tier, q QuotaUse) (float64, bool) {
	pc, pt, ok := projection(q)
	if !ok || t.Calls == nil || t.Tokens == nil || (t.Calls.IsUnlimited() && t.Tokens.IsUnlimited()) {
		return 0, false
	}
	return math.Max(utilization(*t.Calls, pc), utilization(*t.Tokens, pt)) / 100, true
}

func (a *analysis) planOptimization() {
	if len(a.s.Quotas) == 0 {
		a.skip(TypePlanOptimization, "no quota use (usage_quota_used)")
		return
	}
	by := a.tierUse()
	for _, tier := range slices.Sorted(maps.Keys(by)) {
		t, ok := a.plans.Lookup(tier)
		if !ok || t.MonthlyPrice <= 0 {
			continue
		}
		n := 0
		for _, q := range by[tier] {
			if u, ok := maxUtilization(t, q); ok && u < a.cfg.PlansAnalysis.UnderShare {
				n++
			}
		}
		if n == 0 {
			a.none(TypePlanOptimization, "%s: no user under %.0f%% of the quota", tier, a.cfg.PlansAnalysis.UnderShare*100)
			continue
		}
		atRisk := float64(n) * t.MonthlyPrice
		a.add(Recommendation{Type: TypePlanOptimization, Current: fmt.Sprintf("%s users under %.0f%% of quota", tier, a.cfg.PlansAnalysis.UnderShare*100),
			Recommended: "review usage; offer a smaller plan before they churn", Savings: 0, Effort: "low",
			Impact:   fmt.Sprintf("%d users, $%.2f/month of revenue at risk", n, atRisk),
			Evidence: map[string]any{"users": n, "retention_risk_monthly": cents(atRisk), "tier_price": t.MonthlyPrice}}, true)
	}
}

func (a *analysis) billingModel() {
	if len(a.s.Quotas) == 0 {
		a.skip(TypeBillingModel, "no quota use (usage_quota_used)")
		return
	}
	by := a.tierUse()
	for _, tier := range slices.Sorted(maps.Keys(by)) {
		t, ok := a.plans.Lookup(tier)
		if !ok || t.MonthlyPrice <= 0 {
			continue
		}
		under, over, revenue := 0, 0, 0.0
		for _, q := range by[tier] {
			u, ok := maxUtilization(t, q)
			if !ok {
				continue
			}
			if u < a.cfg.PlansAnalysis.UnderShare {
				under++
			}
			if u > 1 {
				over++
				pc, pt, _ := projection(q)
				if !t.Calls.IsUnlimited() && *t.Calls > 0 && pc > float64(*t.Calls) {
					revenue += (pc - float64(*t.Calls)) * t.MonthlyPrice / float64(*t.Calls)
				}
				if !t.Tokens.IsUnlimited() && *t.Tokens > 0 && pt > float64(*t.Tokens) {
					revenue += (pt - float64(*t.Tokens)) * t.MonthlyPrice / float64(*t.Tokens)
				}
			}
		}
		n := float64(len(by[tier]))
		if n == 0 || float64(under)/n < a.cfg.PlansAnalysis.BillingUnderShare || float64(over)/n < a.cfg.PlansAnalysis.BillingOverShare {
			a.none(TypeBillingModel, "%s: %.0f%% of users under %.0f%% of the quota (needs %.0f%%), %.0f%% over it (needs %.0f%%)",
				tier, float64(under)/math.Max(n, 1)*100, a.cfg.PlansAnalysis.UnderShare*100, a.cfg.PlansAnalysis.BillingUnderShare*100,
				float64(over)/math.Max(n, 1)*100, a.cfg.PlansAnalysis.BillingOverShare*100)
			continue
		}
		a.add(Recommendation{Type: TypeBillingModel, Revenue: true, Current: "flat " + tier + " plan",
			Recommended: "usage-based billing for " + tier, Savings: revenue, Effort: "high", Group: "revenue:" + tier,
			Impact: fmt.Sprintf("%.0f%% of %s users use under a quarter of it, %.0f%% exceed it", float64(under)/n*100, tier, float64(over)/n*100),
			Evidence: map[string]any{"users": int(n), "under_25_percent": under, "over_100_percent": over,
				"overage_price_per_call": t.MonthlyPrice / math.Max(float64(*t.Calls), 1)}}, false)
	}
}
