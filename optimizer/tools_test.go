package optimizer

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// The utility calls over HTTP, with the fixed cases of OPTIMIZER.md. They
// never touch the source: the engine's source here fails every query.
func TestToolsEndpoints(t *testing.T) {
	src := &fixedSource{snap: week}
	src.fail(errors.New("the tools must not query the source"))
	api := &API{Engine: newTestEngine(t, src)}
	tool := func(q string, v any) *int {
		rec := get(t, api, APIPrefix+"tools/"+q)
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return &rec.Code
	}

	var roi Caching
	if c := tool("caching-roi?calls=50000&duplicate_rate=0.35&cost_per_call=0.002", &roi); *c != 200 ||
		roi.Cacheable != 17500 || roi.Saved != 14000 || roi.Gross != 28 || roi.Infrastructure != 10 || roi.Net != 18 || roi.ROIPercent != 180 {
		t.Errorf("caching-roi: %d %+v", *c, roi)
	}
	if c := tool("caching-roi?calls=50000&duplicate_rate=0.35&cost_per_call=0.002&hit_rate=0.5&infrastructure_monthly=0", &roi); *c != 200 ||
		roi.Saved != 8750 || roi.Gross != 17.5 || roi.Net != 17.5 || roi.ROIPercent != 0 {
		t.Errorf("caching-roi with a hit rate: %d %+v", *c, roi)
	}

	var fit PlanFit
	if c := tool("plan-tier?calls=125000&tokens=18400000", &fit); *c != 200 || fit.Tier != "professional" || fit.MonthlyPrice != 49 ||
		fit.CallsUtilization != 41.7 || fit.TokensUtilization != 36.8 || fit.BufferPercent != 58.3 {
		t.Errorf("plan-tier: %d %+v", *c, fit)
	}

	var cmp ModelComparison
	if c := tool("compare-models?input_tokens=1000&output_tokens=500", &cmp); *c != 200 || len(cmp.Models) < 8 {
		t.Fatalf("compare-models: %d %+v", *c, cmp)
	}
	costs := map[string]float64{}
	for i, m := range cmp.Models {
		costs[m.Model] = m.Cost
		if i > 0 && m.Cost < cmp.Models[i-1].Cost {
			t.Errorf("not cheapest first at %d: %+v", i, cmp.Models[i-1:i+1])
		}
	}
	// gpt-4 at $30/$60 a million: 1,000 in and 500 out cost 0.03 + 0.03.
	if costs["gpt-4"] != 0.06 || costs["gpt-3.5-turbo"] != 0.00125 {
		t.Errorf("compare-models costs: gpt-4 %v, gpt-3.5-turbo %v", costs["gpt-4"], costs["gpt-3.5-turbo"])
	}

	var est CostEstimate
	if c := tool("estimate-cost?model=claude-3-haiku&input_tokens=1000000&output_tokens=1000000", &est); *c != 200 ||
		est.Cost != 1.5 || est.PriceKey != "claude-3-haiku" || est.Quality == nil || *est.Quality != 75 {
		t.Errorf("estimate-cost: %d %+v", *c, est)
	}

	for _, bad := range []struct{ q, says string }{
		{"compare-models?input_tokens=1000", "output_tokens is required"},
		{"compare-models?input_tokens=-1&output_tokens=5", "input_tokens must be a token count from 0 to 1e+12"},
		{"compare-models?input_tokens=NaN&output_tokens=5", "input_tokens must be"},
		{"compare-models?input_tokens=1&input_tokens=2&output_tokens=5", "given 2 times"},
		{"compare-models?input_tokens=1&output_tokens=5&model=gpt-4", `unknown parameter "model"`},
		{"caching-roi?calls=100&duplicate_rate=35&cost_per_call=0.002", "duplicate_rate must be a fraction from 0 to 1"},
		{"caching-roi?calls=100&duplicate_rate=0.3&cost_per_call=0.002&hit_rate=1.5", "hit_rate must be a fraction from 0 to 1 (default 0.8)"},
		{"plan-tier?calls=ten&tokens=5", `calls must be calls a month from 0 to 1e+12, not "ten"`},
		{"estimate-cost?model=no-such-model&input_tokens=1&output_tokens=1", `model "no-such-model" has no token prices`},
	} {
		rec := get(t, api, APIPrefix+"tools/"+bad.q)
		var body apiError
		if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &body) != nil || !strings.Contains(body.Error, bad.says) ||
			body.Parameter == "" {
			t.Errorf("%s: %d %s", bad.q, rec.Code, rec.Body)
		}
	}
	if rec := get(t, api, APIPrefix+"tools/roi"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "compare-models") {
		t.Errorf("unknown tool: %d %s", rec.Code, rec.Body)
	}
	if src.calls.Load() != 0 {
		t.Errorf("the tools queried the source %d times", src.calls.Load())
	}
}
