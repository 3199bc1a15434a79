package optimizer

import (
	"fmt"
	"testing"
)

// Formulas pinned by worked cases, figures derived by hand in the comments:
// each of these once changed with every other test still passing.

// plan_upgrade's revenue is the price difference: a starter user ($19)
// half way through the month with 20,000 calls is projected at 40,000, over
// starter's 30,000; professional ($49) fits: $49 - $19 = $30 a month (not
// the full $49).
func TestPinPlanUpgradeRevenueIsTheDifference(t *testing.T) {
	s := month()
	s.Quotas = []QuotaUse{quotaUser("a", "starter", 20000, 1e6)}
	cfg := DefaultConfig()
	r := find(Recommend(s, prices(t), cfg.Plans, cfg, now), TypePlanUpgrade)
	if len(r) != 1 || r[0].Recommended != "professional" || r[0].Savings != 30 || !r[0].Revenue {
		t.Errorf("plan_upgrade %+v, want starter -> professional, $30 of revenue", r)
	}
}

// plan_optimization's retention risk is the idle users' plan price, once:
// two professional users ($49) projected at 2,000 and 20,000 calls of
// 300,000 (1.3% and 13.3%, under 25%) and one at 200,000 (133%): 2 x $49 =
// $98 at risk.
func TestPinPlanOptimizationRetentionRisk(t *testing.T) {
	s := month()
	s.Quotas = []QuotaUse{quotaUser("a", "professional", 1000, 1e6), quotaUser("b", "professional", 10000, 1e6),
		quotaUser("c", "professional", 100000, 1e6)}
	cfg := DefaultConfig()
	r := find(Recommend(s, prices(t), cfg.Plans, cfg, now), TypePlanOptimization)
	if len(r) != 1 || r[0].Evidence["users"] != 2 || r[0].Evidence["retention_risk_monthly"] != 98.0 {
		t.Errorf("plan_optimization %+v, want 2 users and $98 at risk", r)
	}
}

// model_consolidation consolidates into a model of the same or higher
// quality only. gpt-4-turbo (quality 93, $10/$30 per million) carries 100
// of 10,100 calls (1%); in use are claude-sonnet-4 (93, $3/$15), gpt-4.1
// (91, $2/$8: cheaper, but lower) and gpt-4o-mini (82). Its 1M input and
// 0.2M output tokens cost $16 on gpt-4-turbo and 3 + 3 = $6 on
// claude-sonnet-4: $10 saved. (gpt-4.1 would say $12.40.)
func TestPinConsolidationKeepsQuality(t *testing.T) {
	s := month()
	withModel(s, "gpt-4-turbo", 100, 1e6, 2e5)
	withModel(s, "claude-sonnet-4", 4000, 1e7, 2e6)
	withModel(s, "gpt-4.1", 3000, 1e7, 2e6)
	withModel(s, "gpt-4o-mini", 3000, 1e7, 2e6)
	cfg := DefaultConfig()
	r := find(Recommend(s, prices(t), cfg.Plans, cfg, now), TypeModelConsolidation)
	if len(r) != 1 || r[0].Current != "gpt-4-turbo" || r[0].Recommended != "consolidate into claude-sonnet-4" || r[0].Savings != 10 {
		t.Errorf("model_consolidation %+v, want gpt-4-turbo into claude-sonnet-4 saving $10", r)
	}
}

// model_consolidation considers models under 5% of the calls: at exactly 5%
// a model is not small. gpt-4-turbo with 210 of 4,200 calls (5%): nothing;
// with 209 of 4,199 (4.98%): consolidated.
func TestPinConsolidationShare(t *testing.T) {
	for _, tc := range []struct {
		turbo float64
		want  int
	}{{210, 0}, {209, 1}} {
		s := month()
		withModel(s, "gpt-4-turbo", tc.turbo, 1e6, 2e5)
		withModel(s, "claude-sonnet-4", 1990, 1e7, 2e6)
		withModel(s, "gpt-4o-mini", 1000, 1e7, 2e6)
		withModel(s, "claude-3-haiku", 1000, 1e7, 2e6)
		cfg := DefaultConfig()
		if got := find(Recommend(s, prices(t), cfg.Plans, cfg, now), TypeModelConsolidation); len(got) != tc.want {
			t.Errorf("gpt-4-turbo with %v calls: %d findings, want %d", tc.turbo, len(got), tc.want)
		}
	}
}

// caching needs a duplicate rate over 20%: at exactly 20% (10,000 of 50,000
// calls, $0.01 a call: $80 gross, $70 net) nothing; at 20.002% the finding.
func TestPinCachingThreshold(t *testing.T) {
	for _, tc := range []struct {
		dups float64
		want int
	}{{10000, 0}, {10001, 1}} {
		s := month()
		s.Services["search"] = &ServiceUsage{Calls: 50000, Duplicates: tc.dups, Cost: 500, ModelCost: map[string]float64{"": 500}}
		cfg := DefaultConfig()
		if got := find(Recommend(s, prices(t), cfg.Plans, cfg, now), TypeCaching); len(got) != tc.want {
			t.Errorf("%v duplicates of 50,000: %d findings, want %d", tc.dups, len(got), tc.want)
		}
	}
}

// The quotas view keeps the old meaning of its old fields: 40 trial users
// (700 calls and 100,000 tokens each) who used 500 calls and 20,000 tokens
// each: limit 700 (not the pooled 28,000), used 500 on average, 71.4%;
// pooled 20,000 of 28,000 calls.
func TestQuotasKeepTheOldMeaning(t *testing.T) {
	s := month()
	for i := range 40 {
		s.Quotas = append(s.Quotas, quotaUser(fmt.Sprint("u", i), "trial", 500, 20000))
	}
	cfg := DefaultConfig()
	q := tierQuotas(s, cfg.Plans)["trial"]
	if q.Limit != int64(700) || q.Used != 500 || q.Percentage != 71.4 || q.TokensLimit != int64(100000) || q.TokensUsed != 20000 ||
		q.PooledLimit != int64(28000) || q.PooledUsed != 20000 || q.PooledPercentage != 71.4 || q.Users != 40 {
		t.Errorf("trial %+v", q)
	}
}
