package optimizer

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/usage-exporter/usage-exporter/internal/admin"
)

// Tools are the old system's utility calls, under APIPrefix + "tools/".
// They answer from the price table and plans alone, never from the source.
var Tools = []string{"compare-models", "estimate-cost", "caching-roi", "plan-tier"}

// Ranges of the tools' parameters: beyond them the answer is no longer a
// plausible monthly figure of one deployment.
const (
	maxTokens = 1e12
	maxCalls  = 1e12
	maxDollar = 1e9
)

// floatParam reads a number parameter within [lo, hi]; without a default
// (def NaN) it is required.
func floatParam(r *http.Request, name string, def, lo, hi float64, what string) (float64, *apiError) {
	vals, ok := r.URL.Query()[name]
	allowed := fmt.Sprintf("%s from %g to %g", what, lo, hi)
	if !math.IsNaN(def) {
		allowed += fmt.Sprintf(" (default %g)", def)
	}
	if !ok {
		if math.IsNaN(def) {
			return 0, &apiError{Error: name + " is required: " + allowed, Parameter: name, Allowed: allowed}
		}
		return def, nil
	}
	if len(vals) > 1 {
		return 0, &apiError{Error: fmt.Sprintf("%s is given %d times; give it once", name, len(vals)), Parameter: name, Allowed: allowed}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(vals[0]), 64)
	if err != nil || math.IsNaN(v) || v < lo || v > hi {
		return 0, &apiError{Error: fmt.Sprintf("%s must be %s, not %q", name, allowed, vals[0]), Parameter: name, Allowed: allowed}
	}
	return v, nil
}

// params reads several parameters, stopping at the first bad one.
type params struct {
	r   *http.Request
	err *apiError
}

func (p *params) float(name string, def, lo, hi float64, what string) float64 {
	if p.err != nil {
		return 0
	}
	v, err := floatParam(p.r, name, def, lo, hi, what)
	p.err = err
	return v
}

// known refuses parameters a tool does not take, so a typo is not silently a default.
func (p *params) known(names ...string) {
	for k := range p.r.URL.Query() {
		if p.err == nil && !slices.Contains(names, k) {
			p.err = &apiError{Error: fmt.Sprintf("unknown parameter %q", k), Parameter: k, Allowed: strings.Join(names, ", ")}
		}
	}
}

// ModelComparison is the body of tools/compare-models.
type ModelComparison struct {
	InputTokens  float64      `json:"input_tokens"`
	OutputTokens float64      `json:"output_tokens"`
	Models       []ModelQuote `json:"models"`
}

// CostEstimate is the body of tools/estimate-cost.
type CostEstimate struct {
	Model        string   `json:"model"`
	PriceKey     string   `json:"price_key"` // the price table entry the model matched
	InputTokens  float64  `json:"input_tokens"`
	OutputTokens float64  `json:"output_tokens"`
	Cost         float64  `json:"cost"`
	Quality      *float64 `json:"quality"`
}

func (a *API) serveTool(w http.ResponseWriter, r *http.Request) {
	s := a.Engine.settings.Load()
	p := &params{r: r}
	var body any
	switch r.PathValue("tool") {
	case "compare-models":
		p.known("input_tokens", "output_tokens")
		in := p.float("input_tokens", math.NaN(), 0, maxTokens, "a token count")
		out := p.float("output_tokens", math.NaN(), 0, maxTokens, "a token count")
		body = ModelComparison{InputTokens: in, OutputTokens: out, Models: CompareModels(s.Prices, in, out)}
	case "estimate-cost":
		p.known("model", "input_tokens", "output_tokens")
		in := p.float("input_tokens", math.NaN(), 0, maxTokens, "a token count")
		out := p.float("output_tokens", math.NaN(), 0, maxTokens, "a token count")
		model := r.URL.Query().Get("model")
		if p.err == nil {
			key, e, ok := s.Prices.Lookup(model)
			if !ok || !e.Priced() {
				p.err = &apiError{Error: fmt.Sprintf("model %q has no token prices in the price table", model), Parameter: "model",
					Allowed: "a priced model, as listed by " + APIPrefix + "tools/compare-models"}
				break
			}
			body = CostEstimate{Model: model, PriceKey: key, InputTokens: in, OutputTokens: out, Cost: ModelCost(e, in, out), Quality: e.Quality}
		}
	case "caching-roi":
		p.known("calls", "duplicate_rate", "cost_per_call", "hit_rate", "infrastructure_monthly")
		c := s.Config.Caching
		calls := p.float("calls", math.NaN(), 0, maxCalls, "a number of calls a month")
		dup := p.float("duplicate_rate", math.NaN(), 0, 1, "a fraction")
		cost := p.float("cost_per_call", math.NaN(), 0, maxDollar, "dollars")
		hit := p.float("hit_rate", c.HitRate, 0, 1, "a fraction")
		infra := p.float("infrastructure_monthly", c.InfrastructureMonthly, 0, maxDollar, "dollars a month")
		body = CachingSavings(calls, dup, cost, hit, infra)
	case "plan-tier":
		p.known("calls", "tokens")
		calls := p.float("calls", math.NaN(), 0, maxCalls, "calls a month")
		tokens := p.float("tokens", math.NaN(), 0, maxTokens, "tokens a month")
		if p.err == nil {
			fit, ok := PlanTier(s.Config.Plans, calls, tokens)
			if !ok {
				admin.WriteJSON(w, http.StatusUnprocessableEntity, apiError{Error: "no configured tier's limits fit that usage"})
				return
			}
			body = fit
		}
	default:
		admin.WriteJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no endpoint %q", r.URL.Path),
			Allowed: APIPrefix + "tools/{" + strings.Join(Tools, ",") + "}"})
		return
	}
	if p.err != nil {
		admin.WriteJSON(w, http.StatusBadRequest, p.err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, body)
}
