package optimizer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// The recommendation types, in the order of the API documentation.
const (
	TypeModelSwitch          = "model_switch"
	TypeSmartRouting         = "smart_routing"
	TypeCaching              = "caching"
	TypeSemanticCaching      = "semantic_caching"
	TypePlanUpgrade          = "plan_upgrade"
	TypePlanOptimization     = "plan_optimization"
	TypeBillingModel         = "billing_model"
	TypeResourceOptimization = "resource_optimization"
	TypeModelConsolidation   = "model_consolidation"
	TypeBatchProcessing      = "batch_processing"
	TypeJobScheduling        = "job_scheduling"
	TypePeakShifting         = "peak_shifting"
	TypeAutoScaling          = "auto_scaling"
)

// Types lists every recommendation type.
var Types = []string{TypeModelSwitch, TypeSmartRouting, TypeCaching, TypeSemanticCaching, TypePlanUpgrade,
	TypePlanOptimization, TypeBillingModel, TypeResourceOptimization, TypeModelConsolidation, TypeBatchProcessing,
	TypeJobScheduling, TypePeakShifting, TypeAutoScaling}

// Efforts and the hours they stand for in estimated_implementation_time.
var effortHours = map[string]int{"low": 4, "medium": 16, "high": 40}

// Recommendation is one finding.
type Recommendation struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Priority    string `json:"priority"`
	Current     string `json:"current"`
	Recommended string `json:"recommended"`
	// Savings are dollars a month: a cost saved, or for Revenue findings
	// (plan_upgrade, billing_model) revenue gained.
	Savings  float64        `json:"savings"`
	Revenue  bool           `json:"revenue,omitempty"`
	Impact   string         `json:"impact"`
	Effort   string         `json:"implementation_effort"`
	Evidence map[string]any `json:"evidence"`
	// subject identifies the finding when Current or Recommended carry
	// figures that drift between runs; the ID hashes it instead of them.
	subject string
}

// Skipped is a type the data did not allow to evaluate, and why.
type Skipped struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// Result is one analysis.
type Result struct {
	Recommendations []Recommendation `json:"recommendations"`
	Skipped         []Skipped        `json:"skipped"`
	TotalSavings    float64          `json:"total_potential_savings"`
	TotalRevenue    float64          `json:"total_revenue_opportunity"`
	Hours           int              `json:"implementation_hours"`
}

// ID is a stable hash of a finding: the same finding keeps its id across runs.
func ID(typ, current, recommended string) string {
	sum := sha256.Sum256([]byte(typ + "\x00" + current + "\x00" + recommended))
	return hex.EncodeToString(sum[:6])
}

type analysis struct {
	s      *Snapshot
	prices *pricing.Table
	plans  plans.Config
	cfg    Config
	now    time.Time
	spend  float64 // monthly
	res    Result
}

// Recommend decides what would save money in s. It is pure: the snapshot,
// prices, plans, thresholds and the time are its only inputs.
func Recommend(s *Snapshot, prices *pricing.Table, pl plans.Config, cfg Config, now time.Time) Result {
	a := &analysis{s: s, prices: prices, plans: pl, cfg: cfg, now: now, spend: s.Monthly(s.TotalCost())}
	a.modelSwitch()
	a.smartRouting()
	a.caching()
	a.semanticCaching()
	a.planUpgrade()
	a.planOptimization()
	a.billingModel()
	a.resourceOptimization()
	a.modelConsolidation()
	a.batchProcessing()
	a.jobScheduling()
	a.peakShifting()
	a.autoScaling()
	r := &a.res
	sort.SliceStable(r.Recommendations, func(i, j int) bool { return r.Recommendations[i].Savings > r.Recommendations[j].Savings })
	if r.Recommendations == nil {
		r.Recommendations = []Recommendation{}
	}
	if r.Skipped == nil {
		r.Skipped = []Skipped{}
	}
	r.TotalSavings, r.TotalRevenue = cents(r.TotalSavings), cents(r.TotalRevenue)
	return *r
}

func (a *analysis) skip(typ, format string, args ...any) {
	a.res.Skipped = append(a.res.Skipped, Skipped{Type: typ, Reason: fmt.Sprintf(format, args...)})
}

// priority grades monthly savings against absolute and relative thresholds.
func (a *analysis) priority(savings float64) string {
	p := a.cfg.Priority
	switch {
	case savings >= math.Max(p.HighMin, p.HighShare*a.spend):
		return "high"
	case savings >= math.Max(p.MediumMin, p.MediumShare*a.spend):
		return "medium"
	default:
		return "low"
	}
}

// add keeps a finding worth at least Priority.DropBelow a month, or an
// informational one (keepZero).
func (a *analysis) add(r Recommendation, keepZero bool) {
	if r.Savings < a.cfg.Priority.DropBelow && !(keepZero && r.Savings == 0) {
		return
	}
	r.Savings = cents(r.Savings)
	if r.subject != "" {
		r.ID = ID(r.Type, r.subject, "")
	} else {
		r.ID = ID(r.Type, r.Current, r.Recommended)
	}
	r.Priority = a.priority(r.Savings)
	if r.Evidence == nil {
		r.Evidence = map[string]any{}
	}
	if a.s.SinceStart {
		r.Evidence["figures"] = "totals since the exporter started, scaled to a month"
	}
	a.res.Recommendations = append(a.res.Recommendations, r)
	if r.Revenue {
		a.res.TotalRevenue += r.Savings
	} else {
		a.res.TotalSavings += r.Savings
	}
	a.res.Hours += effortHours[r.Effort]
}

// priced returns the entry and quality of a model, when both are known.
func (a *analysis) priced(model string) (string, *pricing.Entry, float64, bool) {
	key, e, ok := a.prices.Lookup(model)
	if !ok || e.Quality == nil {
		return key, e, 0, false
	}
	return key, e, *e.Quality, true
}

func (a *analysis) modelSwitch() {
	found := false
	for _, model := range slices.Sorted(maps.Keys(a.s.Models)) {
		mu := a.s.Models[model]
		in, out := a.s.Monthly(mu.InputTokens()), a.s.Monthly(mu.OutputTokens())
		if in+out == 0 {
			continue
		}
		found = true
		key, e, q, ok := a.priced(model)
		if !ok {
			a.skip(TypeModelSwitch, "model %s has no price or quality score in the price table", model)
			continue
		}
		cur := ModelCost(e, in, out)
		floor := math.Max(a.cfg.ModelSwitch.MinQuality, q-a.cfg.ModelSwitch.MaxQualityDrop)
		best, bestCost := a.cheapest(floor, in, out, key)
		if best == "" || bestCost >= cur {
			continue
		}
		be, _ := a.prices.Entry(best)
		saved := cur - bestCost
		a.add(Recommendation{Type: TypeModelSwitch, Current: model, Recommended: best, Savings: saved, Effort: "low",
			Impact: fmt.Sprintf("%.0f%% cost reduction with %.0f points quality trade-off", saved/cur*100, q-*be.Quality),
			Evidence: map[string]any{"monthly_input_tokens": math.Round(in), "monthly_output_tokens": math.Round(out),
				"current_monthly_cost": cents(cur), "recommended_monthly_cost": cents(bestCost),
				"current_quality": q, "recommended_quality": *be.Quality, "price_key": key}}, false)
	}
	if !found {
		a.skip(TypeModelSwitch, "no model tokens in the window (usage_llm_tokens_total)")
	}
}

// cheapest is the model, other than except, with a quality score of at
// least minQuality that prices in and out tokens lowest (the first by name
// among equals); "" when there is none.
func (a *analysis) cheapest(minQuality, in, out float64, except string) (string, float64) {
	for _, q := range CompareModels(a.prices, in, out) {
		if q.Model != except && q.Quality != nil && *q.Quality >= minQuality {
			return q.Model, q.Cost
		}
	}
	return "", math.Inf(1)
}

func (a *analysis) smartRouting() {
	seen := false
	for _, model := range slices.Sorted(maps.Keys(a.s.Models)) {
		mu := a.s.Models[model]
		if len(mu.PromptTokens) == 0 {
			continue
		}
		seen = true
		_, e, q, ok := a.priced(model)
		if !ok || q < a.cfg.SmartRouting.MinQuality {
			continue
		}
		cx := QueryComplexity(mu.PromptTokens)
		share := cx.SimplePercent / 100
		in, out := a.s.Monthly(mu.InputTokens()), a.s.Monthly(mu.OutputTokens())
		cheap, cheapCost := a.cheapest(a.cfg.SmartRouting.TargetQuality, in, out, "")
		if cheap == "" || share == 0 {
			continue
		}
		saved := share * (ModelCost(e, in, out) - cheapCost)
		a.add(Recommendation{Type: TypeSmartRouting, Current: "all queries on " + model,
			Recommended: fmt.Sprintf("queries under %d tokens to %s", SimpleTokens, cheap), Savings: saved, Effort: "medium",
			Impact: fmt.Sprintf("%.0f%% of %s's queries are simple", cx.SimplePercent, model),
			Evidence: map[string]any{"simple_percent": cx.SimplePercent, "medium_percent": cx.MediumPercent,
				"complex_percent": cx.ComplexPercent, "requests": cx.Requests, "cheap_model": cheap}}, false)
	}
	if !seen {
		a.skip(TypeSmartRouting, "no prompt-size histogram (usage_llm_request_tokens: model calls with token counts in the logs)")
	}
}

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
			continue
		}
		c := CachingSavings(a.s.Monthly(sv.Calls), d, costPerCall(sv), a.cfg.Caching.HitRate, a.cfg.Caching.InfrastructureMonthly)
		if c.Net <= 0 {
			continue
		}
		a.add(Recommendation{Type: TypeCaching, Current: "No response caching for " + name,
			Recommended: "Enable Redis caching for " + name, Savings: c.Net, Effort: "low",
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
		return
	}
	near := a.cfg.Caching.SemanticFraction * d
	c := CachingSavings(a.s.Monthly(sv.Calls), near, costPerCall(sv), a.cfg.Caching.HitRate, a.cfg.Caching.VectorStoreMonthly)
	if c.Net <= 0 {
		return
	}
	a.add(Recommendation{Type: TypeSemanticCaching, Current: "exact-match caching only",
		Recommended: "semantic cache for " + a.cfg.Caching.SemanticService, Savings: c.Net, Effort: "medium",
		Impact: fmt.Sprintf("about %.0f%% more calls answered from cache", near*100),
		Evidence: map[string]any{"exact_duplicate_rate_percent": tenths(d * 100),
			"assumption": fmt.Sprintf("near-duplicates add %.0f%% of the exact duplicate rate (not measured)", a.cfg.Caching.SemanticFraction*100),
			"caching":    c}}, false)
}

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
	for m, users := range groups {
		sort.Strings(users)
		a.add(Recommendation{Type: TypePlanUpgrade, Revenue: true, Current: m.from, Recommended: m.to, Savings: revenue[m],
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
			continue
		}
		a.add(Recommendation{Type: TypeBillingModel, Revenue: true, Current: "flat " + tier + " plan",
			Recommended: "usage-based billing for " + tier, Savings: revenue, Effort: "high",
			Impact: fmt.Sprintf("%.0f%% of %s users use under a quarter of it, %.0f%% exceed it", float64(under)/n*100, tier, float64(over)/n*100),
			Evidence: map[string]any{"users": int(n), "under_25_percent": under, "over_100_percent": over,
				"overage_price_per_call": t.MonthlyPrice / math.Max(float64(*t.Calls), 1)}}, false)
	}
}

func (a *analysis) resourceOptimization() {
	g := a.s.GPU
	switch {
	case g == nil:
		a.skip(TypeResourceOptimization, "no GPU utilisation series (DCGM_FI_DEV_GPU_UTIL or nvidia_gpu_duty_cycle) in Prometheus")
		return
	case a.cfg.Costs.GPUHourly <= 0:
		a.skip(TypeResourceOptimization, "costs.gpu_hourly is not configured")
		return
	case g.Utilization >= a.cfg.GPU.TargetUtilization:
		return
	}
	saved := (1 - g.Utilization) * a.cfg.GPU.RecoverableFraction * float64(g.GPUs) * a.cfg.Costs.GPUHourly * 720
	a.add(Recommendation{Type: TypeResourceOptimization, subject: "gpu", Current: fmt.Sprintf("%d GPUs at %.0f%% utilisation", g.GPUs, g.Utilization*100),
		Recommended: "consolidate GPU workloads (batching, fewer or smaller instances)", Savings: saved, Effort: "medium",
		Impact: fmt.Sprintf("%.0f%% of GPU time idle", (1-g.Utilization)*100),
		Evidence: map[string]any{"mean_utilization_percent": tenths(g.Utilization * 100), "gpus": g.GPUs, "metric": g.Metric,
			"gpu_hourly_cost": a.cfg.Costs.GPUHourly, "recoverable_fraction": a.cfg.GPU.RecoverableFraction}}, false)
}

func (a *analysis) modelConsolidation() {
	var total float64
	var inUse []string
	for _, m := range slices.Sorted(maps.Keys(a.s.Models)) {
		if c := a.s.Models[m].Calls; c > 0 {
			total += c
			inUse = append(inUse, m)
		}
	}
	if len(inUse) < a.cfg.Consolidation.MinModels {
		a.skip(TypeModelConsolidation, "%d models with traffic, fewer than %d", len(inUse), a.cfg.Consolidation.MinModels)
		return
	}
	for _, m := range inUse {
		mu := a.s.Models[m]
		if mu.Calls/total >= a.cfg.Consolidation.MaxShare {
			continue
		}
		_, e, q, ok := a.priced(m)
		if !ok {
			continue
		}
		in, out := a.s.Monthly(mu.InputTokens()), a.s.Monthly(mu.OutputTokens())
		cur := ModelCost(e, in, out)
		best, bestCost := "", math.Inf(1)
		for _, k := range inUse {
			_, ke, kq, ok := a.priced(k)
			if k == m || !ok || kq < q {
				continue
			}
			if c := ModelCost(ke, in, out); c <= cur && c < bestCost {
				best, bestCost = k, c
			}
		}
		if best == "" {
			continue
		}
		a.add(Recommendation{Type: TypeModelConsolidation, Current: m, Recommended: "consolidate into " + best,
			Savings: cur - bestCost, Effort: "medium",
			Impact: fmt.Sprintf("%s carries %.1f%% of model calls; one model fewer to run", m, mu.Calls/total*100),
			Evidence: map[string]any{"call_share_percent": tenths(mu.Calls / total * 100), "models_in_use": len(inUse),
				"current_monthly_cost": cents(cur), "consolidated_monthly_cost": cents(bestCost)}}, false)
	}
}

// batchable returns the monthly cost of batchable traffic and what a batch
// API would save on it: the price table's batch rate where the model has
// one, else the configured discount.
func (a *analysis) batchable() (cost, saved float64, evidence map[string]any) {
	evidence = map[string]any{}
	for _, name := range a.cfg.Batch.Services {
		sv := a.s.Services[name]
		if sv == nil {
			continue
		}
		for model, c := range sv.ModelCost {
			mc := a.s.Monthly(c)
			disc := a.cfg.Batch.Discount
			if _, e, ok := a.prices.Lookup(model); ok && e.BatchInput != nil && *e.Input > 0 {
				disc = 1 - *e.BatchInput / *e.Input
			}
			cost += mc
			saved += mc * disc
		}
		// Cost not broken down by model: the default discount.
		var byModel float64
		for _, c := range sv.ModelCost {
			byModel += c
		}
		if rest := a.s.Monthly(sv.Cost - byModel); rest > 0.005 {
			cost += rest
			saved += rest * a.cfg.Batch.Discount
		}
		evidence[name] = cents(a.s.Monthly(sv.Cost))
	}
	for _, route := range a.cfg.Batch.Routes {
		ep := a.s.Endpoints[route]
		if ep == nil {
			continue
		}
		sv := a.s.Services[ep.Service]
		if sv == nil || sv.Calls == 0 || slices.Contains(a.cfg.Batch.Services, ep.Service) {
			continue
		}
		c := a.s.Monthly(sv.Cost * ep.Calls / sv.Calls)
		cost += c
		saved += c * a.cfg.Batch.Discount
		evidence[route] = cents(c)
	}
	return cost, saved, evidence
}

func (a *analysis) batchProcessing() {
	cost, saved, ev := a.batchable()
	if cost == 0 {
		a.skip(TypeBatchProcessing, "no cost on batchable traffic (batch.services: %s)", strings.Join(a.cfg.Batch.Services, ", "))
		return
	}
	ev["batchable_monthly_cost"] = cents(cost)
	a.add(Recommendation{Type: TypeBatchProcessing, Current: "synchronous calls for non-urgent work",
		Recommended: "batch API for " + strings.Join(append(append([]string(nil), a.cfg.Batch.Services...), a.cfg.Batch.Routes...), ", "),
		Savings:     saved, Effort: "medium", Impact: fmt.Sprintf("%.0f%% cheaper batchable traffic", saved/cost*100), Evidence: ev}, false)
}

// busiest returns the share of calls in the n busiest hours of the profile.
func busiest(h []float64, n int) (share float64, hours []int) {
	idx := make([]int, len(h))
	var total float64
	for i, v := range h {
		idx[i] = i
		total += v
	}
	sort.SliceStable(idx, func(i, j int) bool { return h[idx[i]] > h[idx[j]] })
	var top float64
	for _, i := range idx[:min(n, len(idx))] {
		top += h[i]
		hours = append(hours, i)
	}
	sort.Ints(hours)
	if total == 0 {
		return 0, hours
	}
	return top / total, hours
}

func (a *analysis) jobScheduling() {
	if len(a.s.Hourly) != 24 {
		a.skip(TypeJobScheduling, "no hourly profile (needs Prometheus history)")
		return
	}
	cost, _, _ := a.batchable()
	if cost == 0 {
		a.skip(TypeJobScheduling, "no cost on batchable traffic")
		return
	}
	share, hours := busiest(a.s.Hourly, a.cfg.Scheduling.BusiestHours)
	peakCost := cost * share
	a.add(Recommendation{Type: TypeJobScheduling, subject: "batchable work off-peak", Current: fmt.Sprintf("batchable work in the busiest hours %v", hours),
		Recommended: "schedule batchable work off-peak", Savings: peakCost * a.cfg.Scheduling.OffPeakDiscount, Effort: "low",
		Impact: fmt.Sprintf("%.0f%% of calls fall in the %d busiest hours", share*100, len(hours)),
		Evidence: map[string]any{"busiest_hours_utc": hours, "share_percent": tenths(share * 100),
			"batchable_monthly_cost": cents(cost), "off_peak_discount": a.cfg.Scheduling.OffPeakDiscount}}, false)
}

func profileStats(h []float64) (peak, mean, low float64) {
	low = math.Inf(1)
	for _, v := range h {
		peak = math.Max(peak, v)
		low = math.Min(low, v)
		mean += v
	}
	return peak, mean / float64(len(h)), low
}

func (a *analysis) peakShifting() {
	if len(a.s.Hourly) != 24 {
		a.skip(TypePeakShifting, "no hourly profile (needs Prometheus history)")
		return
	}
	peak, mean, _ := profileStats(a.s.Hourly)
	if mean == 0 || peak/mean <= a.cfg.Scheduling.PeakToMean {
		return
	}
	ratio := peak / mean
	r := Recommendation{Type: TypePeakShifting, subject: "peak", Current: fmt.Sprintf("peak-to-mean ratio %.1f", ratio),
		Recommended: "incentivise off-peak use (pricing, quotas by hour)", Effort: "medium",
		Impact:   fmt.Sprintf("the busiest hour carries %.1fx the mean load", ratio),
		Evidence: map[string]any{"peak_calls_per_hour": math.Round(peak), "mean_calls_per_hour": math.Round(mean)}}
	if h := a.cfg.Costs.InfrastructureHourly; h > 0 {
		r.Savings = (peak - mean) / peak * h * 720 * a.cfg.Scheduling.PeakShiftFraction
		r.Evidence["infrastructure_hourly_cost"] = h
	} else {
		r.Evidence["note"] = "costs.infrastructure_hourly is not configured: no savings figure"
	}
	a.add(r, r.Savings == 0)
}

func (a *analysis) autoScaling() {
	if len(a.s.Hourly) != 24 {
		a.skip(TypeAutoScaling, "no hourly profile (needs Prometheus history)")
		return
	}
	peak, _, low := profileStats(a.s.Hourly)
	if peak == 0 || low/peak >= a.cfg.Scheduling.MinToMax {
		return
	}
	h := a.cfg.Costs.InfrastructureHourly
	if h <= 0 {
		a.skip(TypeAutoScaling, "costs.infrastructure_hourly is not configured (load varies %.0f-fold over the day)", peak/math.Max(low, 1))
		return
	}
	var saved float64
	for _, v := range a.s.Hourly {
		saved += (1 - v/peak) * h * a.cfg.Scheduling.ScaleDownFraction * 30
	}
	a.add(Recommendation{Type: TypeAutoScaling, Current: "fixed capacity", Recommended: "scale capacity with the hourly load",
		Savings: saved, Effort: "high", Impact: fmt.Sprintf("the quietest hour has %.0f%% of the busiest hour's load", low/peak*100),
		Evidence: map[string]any{"min_to_max": tenths(low / peak * 100), "infrastructure_hourly_cost": h}}, false)
}
