package optimizer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/usage-exporter/usage-exporter/plans"
)

// withPricedModel adds a model's calls and tokens and, to the llm service,
// what they cost on the price table.
func withPricedModel(t *testing.T, s *Snapshot, name string, calls, in, out float64) {
	t.Helper()
	_, e, ok := prices(t).Lookup(name)
	if !ok {
		t.Fatalf("%s has no price", name)
	}
	withModel(s, name, calls, in, out)
	s.Models[name].Cost = ModelCost(e, in, out)
	sv := s.Services["llm"]
	if sv == nil {
		sv = &ServiceUsage{ModelCost: map[string]float64{}}
		s.Services["llm"] = sv
	}
	sv.Calls += calls
	sv.Cost += s.Models[name].Cost
	sv.ModelCost[name] += s.Models[name].Cost
}

// The sample's case: model_switch and smart_routing both act on gpt-4's
// spend. They are alternatives: only the larger counts, and the total stays
// under gpt-4's spend. Worked by hand: 2M input and 0.5M output tokens of
// gpt-4 a month cost 2 x 30 + 0.5 x 60 = $90; gpt-4.1 prices them at 2 x 2
// + 0.5 x 8 = $8 (quality 91 >= max(85, 95 - 5)): model_switch saves $82. 60% of the
// prompts are simple: routing them to gemini-1.5-flash ($0.075/$0.30: 0.15
// + 0.15 = $0.30) saves 0.6 x (90 - 0.30) = $53.82. Both would claim $135.82
// of a $90 spend.
func TestAlternativesOnOneSpend(t *testing.T) {
	s := month()
	withPricedModel(t, s, "gpt-4", 1000, 2e6, 5e5)
	s.Models["gpt-4"].PromptTokens = map[float64]float64{499: 600, 1999: 900, math.Inf(1): 1000}
	cfg := DefaultConfig()
	r := Recommend(s, prices(t), cfg.Plans, cfg, now)
	sw, rt := find(r, TypeModelSwitch), find(r, TypeSmartRouting)
	if len(sw) != 1 || len(rt) != 1 {
		t.Fatalf("model_switch %+v, smart_routing %+v", sw, rt)
	}
	if sw[0].Savings != 82 || rt[0].Savings != 53.82 {
		t.Errorf("savings %v and %v, want 82 and 53.82", sw[0].Savings, rt[0].Savings)
	}
	if sw[0].Group != "model:gpt-4" || rt[0].Group != sw[0].Group || rt[0].AlternativeTo != sw[0].ID || sw[0].AlternativeTo != "" {
		t.Errorf("not alternatives: %+v / %+v", sw[0], rt[0])
	}
	if sw[0].CountedSavings != 82 || rt[0].CountedSavings != 0 || r.TotalSavings != 82 {
		t.Errorf("counted %v + %v = total %v, want 82 + 0 = 82", sw[0].CountedSavings, rt[0].CountedSavings, r.TotalSavings)
	}
}

// Findings on overlapping spend that are not alternatives compose: the
// later (smaller) one saves on what the earlier left. Worked by hand: the
// llm service costs $90 a month, all gpt-4; caching its 30% duplicates
// saves 1,000 x 30% x 80% = 240 calls at $0.09 = $21.60 gross, $11.60 net
// of the $10 cache. The model switch first takes $82 of the $90; caching
// then saves on the $8 left: 21.60 x 8/90 = $1.92 gross, nothing net.
func TestFindingsComposeOnSharedSpend(t *testing.T) {
	s := month()
	withPricedModel(t, s, "gpt-4", 1000, 2e6, 5e5)
	s.Services["llm"].Duplicates = 300
	cfg := DefaultConfig()
	r := Recommend(s, prices(t), cfg.Plans, cfg, now)
	c := find(r, TypeCaching)
	if len(c) != 1 || c[0].Savings != 11.6 || c[0].CountedSavings != 0 || c[0].AlternativeTo != "" {
		t.Fatalf("caching %+v", c)
	}
	if !near(c[0].counted[modelPool("llm", "gpt-4")], 21.6*8/90) {
		t.Errorf("caching took %v of gpt-4's pool, want %v", c[0].counted, 21.6*8/90)
	}
	if r.TotalSavings != 82 {
		t.Errorf("total %v, want 82", r.TotalSavings)
	}
}

// randomSnapshot is a month of random traffic on priced models, with
// duplicates, prompt sizes, quotas, an hourly profile and GPUs.
func randomSnapshot(t *testing.T, rng *rand.Rand) (*Snapshot, Config) {
	s := month()
	models := []string{"gpt-4", "gpt-4o", "gpt-4o-mini", "claude-3-haiku", "gpt-4-turbo", "claude-sonnet-4", "gemini-1.5-flash"}
	for _, m := range models {
		if rng.IntN(3) == 0 {
			continue
		}
		calls := float64(1 + rng.IntN(100000))
		withPricedModel(t, s, m, calls, calls*float64(100+rng.IntN(5000)), calls*float64(10+rng.IntN(1000)))
		n := calls
		simple := math.Floor(n * rng.Float64())
		medium := simple + math.Floor((n-simple)*rng.Float64())
		s.Models[m].PromptTokens = map[float64]float64{499: simple, 1999: medium, math.Inf(1): n}
	}
	if sv := s.Services["llm"]; sv != nil {
		sv.Duplicates = math.Floor(sv.Calls * rng.Float64() * 0.6)
	}
	for _, name := range []string{"embeddings", "search"} {
		calls := float64(rng.IntN(200000))
		cost := calls * 0.001 * rng.Float64()
		s.Services[name] = &ServiceUsage{Calls: calls, Cost: cost, ModelCost: map[string]float64{"": cost},
			Duplicates: math.Floor(calls * rng.Float64() * 0.6)}
	}
	s.Hourly = make([]float64, 24)
	s.HourlyByService = map[string][]float64{"embeddings": make([]float64, 24)}
	for h := range s.Hourly {
		s.Hourly[h] = float64(rng.IntN(10000))
		s.HourlyByService["embeddings"][h] = float64(rng.IntN(1000))
	}
	tiers := []string{"trial", "starter", "professional", "enterprise"}
	for i := range rng.IntN(30) {
		s.Quotas = append(s.Quotas, quotaUser(fmt.Sprint("u", i), tiers[rng.IntN(4)], float64(rng.IntN(60000)), float64(rng.IntN(1e7))))
	}
	cfg := DefaultConfig()
	if rng.IntN(2) == 0 {
		s.GPU = &GPUUsage{Utilization: rng.Float64(), GPUs: 1 + rng.IntN(8)}
		cfg.Costs.GPUHourly = 4 * rng.Float64()
	}
	if rng.IntN(2) == 0 {
		cfg.Costs.InfrastructureHourly = 20 * rng.Float64()
	}
	return s, cfg
}

// Over random snapshots: the total savings never exceed the spend they act
// on (the usage spend, plus the configured infrastructure and GPU costs),
// no pool gives more dollars than it has to the findings counted, of each
// group exactly one counts, and an alternative counts nothing.
func TestTotalsNeverExceedTheSpend(t *testing.T) {
	tbl := prices(t)
	for seed := range uint64(500) {
		rng := rand.New(rand.NewPCG(seed, 42))
		s, cfg := randomSnapshot(t, rng)
		r := Recommend(s, tbl, cfg.Plans, cfg, now)
		a := &analysis{s: s, cfg: cfg}
		pools := a.pools()
		var budget float64
		for _, v := range pools {
			budget += v
		}
		if r.TotalSavings > budget+0.01 {
			t.Fatalf("seed %d: total savings %v over the spend %v", seed, r.TotalSavings, budget)
		}
		if spend := s.Monthly(s.TotalCost()); cfg.Costs.InfrastructureHourly == 0 && s.GPU == nil && r.TotalSavings > spend+0.01 {
			t.Fatalf("seed %d: total savings %v over the projected spend %v", seed, r.TotalSavings, spend)
		}
		taken := map[pool]float64{}
		counted := map[string]int{}
		var sum float64
		for _, x := range r.Recommendations {
			if x.AlternativeTo != "" {
				if x.CountedSavings != 0 || x.Group == "" {
					t.Fatalf("seed %d: alternative %+v", seed, x)
				}
				continue
			}
			if x.Group != "" {
				counted[x.Group]++
			}
			if !x.Revenue {
				sum += x.CountedSavings
				if x.CountedSavings > x.Savings+0.005 {
					t.Fatalf("seed %d: %s counts %v of its %v", seed, x.Type, x.CountedSavings, x.Savings)
				}
			}
			for p, v := range x.counted {
				taken[p] += v
			}
		}
		for p, v := range taken {
			if v > pools[p]+1e-6 {
				t.Fatalf("seed %d: pool %s of $%v gave $%v", seed, p, pools[p], v)
			}
		}
		for g, n := range counted {
			if n != 1 {
				t.Fatalf("seed %d: group %s counts %d findings", seed, g, n)
			}
		}
		if math.Abs(sum-r.TotalSavings) > 0.005*float64(len(r.Recommendations)+1) {
			t.Fatalf("seed %d: counted savings sum to %v, total %v", seed, sum, r.TotalSavings)
		}
	}
}

// Every type is accounted for: it found something, was skipped (the data
// cannot support it), or says what fell short.
func TestEveryTypeAccountedFor(t *testing.T) {
	tbl := prices(t)
	for seed := range uint64(100) {
		s, cfg := randomSnapshot(t, rand.New(rand.NewPCG(seed, 7)))
		r := Recommend(s, tbl, cfg.Plans, cfg, now)
		seen := map[string]string{}
		for _, x := range r.Recommendations {
			seen[x.Type] = "found"
		}
		for _, x := range r.Skipped {
			if seen[x.Type] == "" {
				seen[x.Type] = "skipped"
			}
		}
		for _, x := range r.NothingFound {
			if seen[x.Type] != "" || x.Reason == "" {
				t.Fatalf("seed %d: %s is both %s and nothing found (%q)", seed, x.Type, seen[x.Type], x.Reason)
			}
			seen[x.Type] = "nothing"
		}
		for _, typ := range Types {
			if seen[typ] == "" {
				t.Fatalf("seed %d: %s is not accounted for", seed, typ)
			}
		}
	}
	// The figure that fell short is named.
	s := month()
	s.Services["search"] = &ServiceUsage{Calls: 1000, Duplicates: 35, Cost: 1, ModelCost: map[string]float64{"": 1}}
	r := Recommend(s, tbl, plans.DefaultConfig(), DefaultConfig(), now)
	for _, x := range r.NothingFound {
		if x.Type == TypeCaching && x.Reason == "search: duplicate rate 3.5%, not over 20%" {
			return
		}
	}
	t.Errorf("caching's shortfall not named: %+v", r.NothingFound)
}
