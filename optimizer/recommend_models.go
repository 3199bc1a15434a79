package optimizer

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/usage-exporter/usage-exporter/pricing"
)

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
			a.none(TypeModelSwitch, "%s: no model of quality %.0f or more prices its tokens lower", model, floor)
			continue
		}
		be, _ := a.prices.Entry(best)
		saved := cur - bestCost
		a.add(Recommendation{Type: TypeModelSwitch, Current: model, Recommended: best, Savings: saved, Effort: "low",
			Group: "model:" + model, claims: a.modelClaims(model, saved),
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
			a.none(TypeSmartRouting, "%s: quality under %.0f (or unknown)", model, a.cfg.SmartRouting.MinQuality)
			continue
		}
		cx := QueryComplexity(mu.PromptTokens)
		share := cx.SimplePercent / 100
		in, out := a.s.Monthly(mu.InputTokens()), a.s.Monthly(mu.OutputTokens())
		cheap, cheapCost := a.cheapest(a.cfg.SmartRouting.TargetQuality, in, out, "")
		if cheap == "" || share == 0 || cheapCost >= ModelCost(e, in, out) {
			a.none(TypeSmartRouting, "%s: %.1f%% simple queries, no cheaper model of quality %.0f or more", model,
				cx.SimplePercent, a.cfg.SmartRouting.TargetQuality)
			continue
		}
		saved := share * (ModelCost(e, in, out) - cheapCost)
		a.add(Recommendation{Type: TypeSmartRouting, Current: "all queries on " + model,
			Group: "model:" + model, claims: a.modelClaims(model, saved),
			Recommended: fmt.Sprintf("queries under %d tokens to %s", SimpleTokens, cheap), Savings: saved, Effort: "medium",
			Impact: fmt.Sprintf("%.0f%% of %s's queries are simple", cx.SimplePercent, model),
			Evidence: map[string]any{"simple_percent": cx.SimplePercent, "medium_percent": cx.MediumPercent,
				"complex_percent": cx.ComplexPercent, "requests": cx.Requests, "cheap_model": cheap}}, false)
	}
	if !seen {
		a.skip(TypeSmartRouting, "no prompt-size histogram (usage_llm_request_tokens: model calls with token counts in the logs)")
	}
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
			a.none(TypeModelConsolidation, "%s: %.1f%% of model calls, not under %.0f%%", m, mu.Calls/total*100,
				a.cfg.Consolidation.MaxShare*100)
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
			a.none(TypeModelConsolidation, "%s: no model in use of the same or higher quality at its price or less", m)
			continue
		}
		a.add(Recommendation{Type: TypeModelConsolidation, Current: m, Recommended: "consolidate into " + best,
			Savings: cur - bestCost, Effort: "medium", Group: "model:" + m, claims: a.modelClaims(m, cur-bestCost),
			Impact: fmt.Sprintf("%s carries %.1f%% of model calls; one model fewer to run", m, mu.Calls/total*100),
			Evidence: map[string]any{"call_share_percent": tenths(mu.Calls / total * 100), "models_in_use": len(inUse),
				"current_monthly_cost": cents(cur), "consolidated_monthly_cost": cents(bestCost)}}, false)
	}
}
