package optimizer

import (
	"math"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

var now = time.Date(2025, 11, 16, 0, 0, 0, 0, time.UTC)

func prices(t testing.TB) *pricing.Table {
	t.Helper()
	tbl, err := pricing.Load(pricing.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// month is an empty 30-day snapshot: its figures are monthly figures.
func month() *Snapshot {
	return &Snapshot{Days: 30, Window: 30 * 24 * time.Hour, End: now, Start: now.Add(-30 * 24 * time.Hour),
		Services: map[string]*ServiceUsage{}, Endpoints: map[string]*EndpointUsage{}, Models: map[string]*ModelUsage{},
		Users: map[string]*UserUsage{}}
}

func withModel(s *Snapshot, name string, calls, in, out float64) *Snapshot {
	s.Models[name] = &ModelUsage{Calls: calls, Tokens: map[string]float64{"input": in, "output": out}}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.006 }

func TestFixedUtilities(t *testing.T) {
	c := CachingSavings(50000, 0.35, 0.002, 0.8, 10)
	if c.Cacheable != 17500 || c.Saved != 14000 || c.Gross != 28 || c.Infrastructure != 10 || c.Net != 18 || c.ROIPercent != 180 {
		t.Errorf("caching %+v, want 17,500 / 14,000 / 28 / 10 / 18 / 180%%", c)
	}
	fit, ok := PlanTier(plans.DefaultConfig(), 125000, 18_400_000)
	if !ok || fit.Tier != "professional" || fit.MonthlyPrice != 49 || fit.CallsUtilization != 41.7 ||
		fit.TokensUtilization != 36.8 || fit.BufferPercent != 58.3 {
		t.Errorf("plan tier %+v, want professional $49 41.7%% 36.8%% 58.3%%", fit)
	}
	if fit, _ := PlanTier(plans.DefaultConfig(), 500, 1000); fit.Tier != "trial" {
		t.Errorf("small usage fits %s, want trial", fit.Tier)
	}
	if fit, _ := PlanTier(plans.DefaultConfig(), 1e6, 1e9); fit.Tier != "enterprise" || fit.CallsLimit != "unlimited" {
		t.Errorf("large usage fits %+v, want enterprise", fit)
	}
	tbl := prices(t)
	_, gpt4, _ := tbl.Lookup("gpt-4")
	if cost := ModelCost(gpt4, 1000, 500); cost != 0.06 {
		t.Errorf("gpt-4 1000/500 = %v, want 0.06", cost)
	}
	qs := CompareModels(tbl, 1000, 500)
	for i := 1; i < len(qs); i++ {
		if qs[i].Cost < qs[i-1].Cost {
			t.Fatalf("not sorted by cost at %d: %+v", i, qs[i-1:i+1])
		}
	}
	// The exporter's buckets: le="499" is "under 500 tokens", le="1999"
	// "under 2,000" (the spec: simple < 500, complex >= 2,000).
	h := map[float64]float64{99: 30, 499: 60, 999: 70, 1999: 80, 3999: 95, math.Inf(1): 100}
	if cx := QueryComplexity(h); cx.SimplePercent != 60 || cx.MediumPercent != 20 || cx.ComplexPercent != 20 {
		t.Errorf("complexity %+v, want 60/20/20", cx)
	}
	// A prompt of exactly 500 tokens is medium: with the old bounds
	// (le="500"), simple would take it; these buckets cannot.
	if cx := QueryComplexity(map[float64]float64{500: 10, 2000: 10, math.Inf(1): 10}); cx.SimplePercent != 0 || cx.MediumPercent != 100 {
		t.Errorf("le=500 read as %+v: a 500-token prompt is not simple", cx)
	}
}

func find(r Result, typ string) []Recommendation {
	var out []Recommendation
	for _, x := range r.Recommendations {
		if x.Type == typ {
			out = append(out, x)
		}
	}
	return out
}

func skipped(r Result, typ string) bool {
	for _, s := range r.Skipped {
		if s.Type == typ {
			return true
		}
	}
	return false
}

func quotaUser(user, tier string, calls, tokens float64) QuotaUse {
	// Half way through November.
	return QuotaUse{User: user, Tier: tier, Calls: calls, Tokens: tokens, Observed: now,
		PeriodStart: time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)}
}

func profile(peak float64) []float64 {
	h := make([]float64, 24)
	for i := range h {
		h[i] = 100
	}
	h[13], h[14], h[15], h[16] = peak, peak, peak, peak
	return h
}

// Each type on a snapshot that triggers it and on one that must not.
func TestRecommendationTypes(t *testing.T) {
	tbl := prices(t)
	gpt4o, _ := tbl.Entry("gpt-4o")
	flash, _ := tbl.Entry("gemini-1.5-flash")
	gpt41, _ := tbl.Entry("gpt-4.1")
	gpt4, _ := tbl.Entry("gpt-4")
	cases := []struct {
		name    string
		typ     string
		cfg     func(*Config)
		snap    func() *Snapshot
		want    int     // recommendations of the type
		savings float64 // of the first, when want > 0
		skip    bool    // the type reports why it was skipped
	}{
		{"model_switch from gpt-4", TypeModelSwitch, nil,
			func() *Snapshot { return withModel(month(), "gpt-4", 1000, 2e6, 5e5) }, 1,
			ModelCost(gpt4, 2e6, 5e5) - ModelCost(gpt41, 2e6, 5e5), false},
		{"model_switch: nothing cheaper at that quality", TypeModelSwitch, nil,
			func() *Snapshot { return withModel(month(), "gpt-4.1-nano", 1000, 2e6, 5e5) }, 0, 0, false},
		{"model_switch: no tokens", TypeModelSwitch, nil, month, 0, 0, true},
		{"smart_routing of gpt-4o's simple queries", TypeSmartRouting, nil, func() *Snapshot {
			s := withModel(month(), "gpt-4o", 1000, 4e6, 1e6)
			s.Models["gpt-4o"].PromptTokens = map[float64]float64{499: 600, 1999: 900, math.Inf(1): 1000}
			return s
		}, 1, 0.6 * (ModelCost(gpt4o, 4e6, 1e6) - ModelCost(flash, 4e6, 1e6)), false},
		{"smart_routing: model under quality 90", TypeSmartRouting, nil, func() *Snapshot {
			s := withModel(month(), "gpt-4o-mini", 1000, 4e6, 1e6)
			s.Models["gpt-4o-mini"].PromptTokens = map[float64]float64{499: 600, math.Inf(1): 1000}
			return s
		}, 0, 0, false},
		{"caching: the fixed case", TypeCaching, nil, func() *Snapshot {
			s := month()
			s.Services["embeddings"] = &ServiceUsage{Calls: 50000, Duplicates: 17500, Cost: 100}
			return s
		}, 1, 18, false},
		{"caching: 15% duplicates", TypeCaching, nil, func() *Snapshot {
			s := month()
			s.Services["embeddings"] = &ServiceUsage{Calls: 50000, Duplicates: 7500, Cost: 100}
			return s
		}, 0, 0, false},
		{"caching: no duplicate counts", TypeCaching, nil, func() *Snapshot {
			s := month()
			s.Services["search"] = &ServiceUsage{Calls: 50000, Cost: 100}
			return s
		}, 0, 0, true},
		{"semantic_caching for llm", TypeSemanticCaching, nil, func() *Snapshot {
			s := month()
			s.Services["llm"] = &ServiceUsage{Calls: 1e6, Duplicates: 120000, Cost: 10000}
			return s
		}, 1, 48000*0.01 - 25, false},
		{"semantic_caching: 5% duplicates", TypeSemanticCaching, nil, func() *Snapshot {
			s := month()
			s.Services["llm"] = &ServiceUsage{Calls: 1e6, Duplicates: 50000, Cost: 10000}
			return s
		}, 0, 0, false},
		{"plan_upgrade of a trial user projected over", TypePlanUpgrade, nil, func() *Snapshot {
			s := month()
			s.Quotas = []QuotaUse{quotaUser("a", "trial", 400, 1000), quotaUser("b", "trial", 100, 1000)}
			return s
		}, 1, 19, false},
		{"plan_upgrade: within limits", TypePlanUpgrade, nil, func() *Snapshot {
			s := month()
			s.Quotas = []QuotaUse{quotaUser("b", "trial", 100, 1000)}
			return s
		}, 0, 0, false},
		{"plan_optimization of idle professional users", TypePlanOptimization, nil, func() *Snapshot {
			s := month()
			s.Quotas = []QuotaUse{quotaUser("a", "professional", 100, 1000), quotaUser("b", "professional", 150000, 1000)}
			return s
		}, 1, 0, false},
		{"plan_optimization: free tier", TypePlanOptimization, nil, func() *Snapshot {
			s := month()
			s.Quotas = []QuotaUse{quotaUser("a", "trial", 1, 1)}
			return s
		}, 0, 0, false},
		{"billing_model for a split starter tier", TypeBillingModel, nil, func() *Snapshot {
			s := month()
			for i, calls := range []float64{100, 200, 300, 400, 8000, 8000, 8000, 8000, 20000, 25000} {
				s.Quotas = append(s.Quotas, quotaUser(string(rune('a'+i)), "starter", calls, 0))
			}
			return s
		}, 1, (40000-30000)*19.0/30000 + (50000-30000)*19.0/30000, false},
		{"billing_model: even use", TypeBillingModel, nil, func() *Snapshot {
			s := month()
			for i := 0; i < 10; i++ {
				s.Quotas = append(s.Quotas, quotaUser(string(rune('a'+i)), "starter", 8000, 0))
			}
			return s
		}, 0, 0, false},
		{"resource_optimization at 40%", TypeResourceOptimization, func(c *Config) { c.Costs.GPUHourly = 2 }, func() *Snapshot {
			s := month()
			s.GPU = &GPUUsage{Utilization: 0.4, GPUs: 4, Metric: "DCGM_FI_DEV_GPU_UTIL"}
			return s
		}, 1, 0.6 * 0.5 * 4 * 2 * 720, false},
		{"resource_optimization: busy GPUs", TypeResourceOptimization, func(c *Config) { c.Costs.GPUHourly = 2 }, func() *Snapshot {
			s := month()
			s.GPU = &GPUUsage{Utilization: 0.8, GPUs: 4}
			return s
		}, 0, 0, false},
		{"resource_optimization: no GPU series", TypeResourceOptimization, nil, month, 0, 0, true},
		{"resource_optimization: no GPU cost", TypeResourceOptimization, nil, func() *Snapshot {
			s := month()
			s.GPU = &GPUUsage{Utilization: 0.4, GPUs: 4}
			return s
		}, 0, 0, true},
		{"model_consolidation of a small gpt-4-turbo", TypeModelConsolidation, nil, func() *Snapshot {
			s := month()
			withModel(s, "gpt-4-turbo", 200, 1e6, 2e5)
			withModel(s, "claude-sonnet-4", 4000, 1e7, 2e6)
			withModel(s, "gpt-4o-mini", 3000, 1e7, 2e6)
			withModel(s, "claude-3-haiku", 2800, 1e7, 2e6)
			return s
		}, 1, (1e6*10 + 2e5*30 - 1e6*3 - 2e5*15) / 1e6, false},
		{"model_consolidation: three models", TypeModelConsolidation, nil, func() *Snapshot {
			s := month()
			withModel(s, "gpt-4-turbo", 200, 1e6, 2e5)
			withModel(s, "claude-sonnet-4", 4000, 1e7, 2e6)
			withModel(s, "gpt-4o-mini", 3000, 1e7, 2e6)
			return s
		}, 0, 0, true},
		{"batch_processing of embeddings at the batch rate", TypeBatchProcessing, nil, func() *Snapshot {
			s := month()
			s.Services["embeddings"] = &ServiceUsage{Calls: 1e5, Cost: 100, ModelCost: map[string]float64{"text-embedding-3-small": 100}}
			return s
		}, 1, 50, false},
		{"batch_processing: per-call cost at the default discount", TypeBatchProcessing, nil, func() *Snapshot {
			s := month()
			s.Services["embeddings"] = &ServiceUsage{Calls: 1e5, Cost: 40, ModelCost: map[string]float64{"": 40}}
			return s
		}, 1, 20, false},
		{"batch_processing: no embeddings", TypeBatchProcessing, nil, month, 0, 0, true},
		// The system peaks at 13-16 h; embeddings run flat, so a sixth of
		// their calls (4 of 24 even hours) fall in the busiest hours: $100 x
		// 1/6 x 20% off-peak. (Taking the whole traffic's 4,000 of 6,000
		// calls in those hours, as before, said $13.33.)
		{"job_scheduling off the busiest hours", TypeJobScheduling, nil, func() *Snapshot {
			s := month()
			s.Services["embeddings"] = &ServiceUsage{Calls: 1e5, Cost: 100, ModelCost: map[string]float64{"": 100}}
			s.Hourly = profile(1000)
			s.HourlyByService = map[string][]float64{"embeddings": profile(100)}
			return s
		}, 1, 100.0 / 6 * 0.2, false},
		{"job_scheduling: batchable traffic off-peak already", TypeJobScheduling, nil, func() *Snapshot {
			s := month()
			s.Services["embeddings"] = &ServiceUsage{Calls: 1e5, Cost: 100, ModelCost: map[string]float64{"": 100}}
			s.Hourly = profile(1000)
			night := make([]float64, 24)
			night[2] = 500
			s.HourlyByService = map[string][]float64{"embeddings": night}
			return s
		}, 0, 0, false},
		{"job_scheduling: no profile", TypeJobScheduling, nil, month, 0, 0, true},
		{"peak_shifting with infrastructure cost", TypePeakShifting, func(c *Config) { c.Costs.InfrastructureHourly = 10 }, func() *Snapshot {
			s := month()
			s.Hourly = profile(1000)
			return s
		}, 1, (1000 - 250.0) / 1000 * 10 * 720 * 0.2, false},
		{"peak_shifting without cost: informational", TypePeakShifting, nil, func() *Snapshot {
			s := month()
			s.Hourly = profile(1000)
			return s
		}, 1, 0, false},
		{"peak_shifting: flat", TypePeakShifting, nil, func() *Snapshot {
			s := month()
			s.Hourly = profile(150)
			return s
		}, 0, 0, false},
		{"auto_scaling of a 10x day", TypeAutoScaling, func(c *Config) { c.Costs.InfrastructureHourly = 10 }, func() *Snapshot {
			s := month()
			s.Hourly = profile(1000)
			return s
		}, 1, 20 * 0.9 * 10 * 0.5 * 30, false},
		{"auto_scaling: no cost", TypeAutoScaling, nil, func() *Snapshot {
			s := month()
			s.Hourly = profile(1000)
			return s
		}, 0, 0, true},
		{"auto_scaling: flat", TypeAutoScaling, func(c *Config) { c.Costs.InfrastructureHourly = 10 }, func() *Snapshot {
			s := month()
			s.Hourly = profile(150)
			return s
		}, 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			r := Recommend(tc.snap(), tbl, cfg.Plans, cfg, now)
			got := find(r, tc.typ)
			if len(got) != tc.want {
				t.Fatalf("%d %s recommendations, want %d: %+v (skipped %+v)", len(got), tc.typ, tc.want, r.Recommendations, r.Skipped)
			}
			if tc.want > 0 && !near(got[0].Savings, tc.savings) {
				t.Errorf("savings %v, want %v: %+v", got[0].Savings, tc.savings, got[0])
			}
			if skipped(r, tc.typ) != tc.skip {
				t.Errorf("skipped %v, want %v: %+v", skipped(r, tc.typ), tc.skip, r.Skipped)
			}
			for _, x := range got {
				if x.ID == "" || x.Priority == "" || x.Impact == "" || x.Effort == "" || x.Evidence == nil {
					t.Errorf("incomplete: %+v", x)
				}
			}
		})
	}
}

func TestStableIDsAndTotals(t *testing.T) {
	tbl := prices(t)
	cfg := DefaultConfig()
	cfg.Costs.InfrastructureHourly = 10
	cfg.Costs.GPUHourly = 2
	// f scales the traffic: the same findings with other figures.
	snapOf := func(f float64) *Snapshot {
		s := withModel(month(), "gpt-4", 1000*f, 2e6*f, 5e5*f)
		s.Services["embeddings"] = &ServiceUsage{Calls: 50000 * f, Duplicates: 17500 * f, Cost: 100 * f, ModelCost: map[string]float64{"": 100 * f}}
		s.Quotas = []QuotaUse{quotaUser("a", "trial", 400, 1000)}
		s.Hourly = profile(1000 * f)
		s.HourlyByService = map[string][]float64{"embeddings": profile(500 * f)}
		s.GPU = &GPUUsage{Utilization: 0.3 / f, GPUs: 4}
		return s
	}
	snap := func() *Snapshot { return snapOf(1) }
	a, b := Recommend(snap(), tbl, cfg.Plans, cfg, now), Recommend(snapOf(1.1), tbl, cfg.Plans, cfg, now.Add(time.Hour))
	ids := func(r Result) []string {
		var out []string
		for _, x := range r.Recommendations {
			out = append(out, x.Type+":"+x.ID)
		}
		sort.Strings(out) // the order follows the savings
		return out
	}
	if !reflect.DeepEqual(ids(a), ids(b)) || len(ids(a)) < 8 {
		t.Errorf("ids differ between runs or too few: %v vs %v", ids(a), ids(b))
	}
	// Pinned: dashboards and tickets keep ids across releases.
	if id := ID(TypeCaching, "x", "y"); id != "116cb6fee2ef" || id == ID(TypeCaching, "x", "z") || id == ID(TypeCaching, "xy", "") {
		t.Errorf("ID(caching, x, y) = %s: not the pinned hash of type, current and recommended", id)
	}
	// The totals add the counted savings; an alternative counts nothing
	// and takes no hours.
	var cost, revenue float64
	hours := 0
	for _, x := range a.Recommendations {
		if x.AlternativeTo != "" {
			if x.CountedSavings != 0 {
				t.Errorf("alternative %s counts %v", x.Type, x.CountedSavings)
			}
			continue
		}
		if x.Revenue {
			revenue += x.CountedSavings
		} else {
			cost += x.CountedSavings
		}
		hours += effortHours[x.Effort]
	}
	if !near(a.TotalSavings, cost) || !near(a.TotalRevenue, revenue) || a.TotalRevenue != 19 || a.Hours != hours {
		t.Errorf("totals %v/%v/%d, want %v/%v/%d", a.TotalSavings, a.TotalRevenue, a.Hours, cost, revenue, hours)
	}
}

func TestPriority(t *testing.T) {
	a := &analysis{cfg: DefaultConfig(), spend: 2000}
	// high: >= max(100, 200); medium: >= max(20, 40).
	for savings, want := range map[float64]string{250: "high", 150: "medium", 40: "medium", 30: "low"} {
		if got := a.priority(savings); got != want {
			t.Errorf("priority(%v) with $2000 spend = %s, want %s", savings, got, want)
		}
	}
}
