package optimizer

import (
	"maps"
	"math"
	"slices"
	"strings"
)

// A pool is a part of the monthly spend that findings act on: one model's
// cost in one service ("svc/model", model "" for per-call cost), or the
// configured infrastructure and GPU costs. The usage pools add up to the
// projected spend (egress aside: no finding acts on it).
type pool string

const (
	poolInfrastructure pool = "infrastructure"
	poolGPU            pool = "gpu"
)

func modelPool(service, model string) pool { return pool(service + "/" + model) }

// pools are the monthly dollars of every pool.
func (a *analysis) pools() map[pool]float64 {
	out := map[pool]float64{}
	for name, sv := range a.s.Services {
		for model, c := range sv.ModelCost {
			if c > 0 {
				out[modelPool(name, model)] += a.s.Monthly(c)
			}
		}
	}
	if h := a.cfg.Costs.InfrastructureHourly; h > 0 {
		out[poolInfrastructure] = h * 720
	}
	if g := a.s.GPU; g != nil && a.cfg.Costs.GPUHourly > 0 {
		out[poolGPU] = float64(g.GPUs) * a.cfg.Costs.GPUHourly * 720
	}
	return out
}

// modelClaims spreads dollars saved on a model over the services whose
// cost it is, in proportion.
func (a *analysis) modelClaims(model string, dollars float64) map[pool]float64 {
	shares := map[pool]float64{}
	for name, sv := range a.s.Services {
		if c := sv.ModelCost[model]; c > 0 {
			shares[modelPool(name, model)] = c
		}
	}
	return spread(shares, dollars)
}

// serviceClaims spreads dollars saved on a service's calls over its
// models' and per-call costs, in proportion.
func (a *analysis) serviceClaims(service string, dollars float64) map[pool]float64 {
	shares := map[pool]float64{}
	if sv := a.s.Services[service]; sv != nil {
		for model, c := range sv.ModelCost {
			if c > 0 {
				shares[modelPool(service, model)] = c
			}
		}
	}
	return spread(shares, dollars)
}

func spread(shares map[pool]float64, dollars float64) map[pool]float64 {
	var total float64
	for _, v := range shares {
		total += v
	}
	out := map[pool]float64{}
	if total <= 0 {
		return out
	}
	for p, v := range shares {
		out[p] = dollars * v / total
	}
	return out
}

func mergeClaims(dst, src map[pool]float64) map[pool]float64 {
	if dst == nil {
		dst = map[pool]float64{}
	}
	for p, v := range src {
		dst[p] += v
	}
	return dst
}

// settle decides what counts in the totals. Of each group only the finding
// with the largest savings counts; the others are its alternatives. The
// counted cost findings then take their savings, largest first, out of
// what the ones before them left of each pool: a finding whose pool a
// larger one already shrank saves in proportion to what is left, and no
// two take the same dollars. Revenue findings count whole, one a group.
func (a *analysis) settle() {
	recs := a.res.Recommendations // sorted by savings, then id
	best := map[string]int{}
	for i := range recs {
		r := &recs[i]
		if r.Group == "" {
			continue
		}
		if j, ok := best[r.Group]; ok {
			r.AlternativeTo = recs[j].ID
			continue
		}
		best[r.Group] = i
	}
	pools := a.pools()
	left := maps.Clone(pools)
	var total, revenue float64
	hours := 0
	for i := range recs {
		r := &recs[i]
		if r.AlternativeTo != "" {
			continue
		}
		hours += effortHours[r.Effort]
		if r.Revenue {
			r.CountedSavings = r.Savings
			revenue += r.Savings
			continue
		}
		var gross float64
		r.counted = map[pool]float64{}
		for _, p := range slices.Sorted(maps.Keys(r.claims)) {
			orig := pools[p]
			if orig <= 0 {
				continue
			}
			part := math.Min(r.claims[p], orig) * left[p] / orig
			left[p] -= part
			r.counted[p] = part
			gross += part
		}
		r.CountedSavings = cents(math.Max(gross-r.overhead, 0))
		total += r.CountedSavings
	}
	a.res.TotalSavings, a.res.TotalRevenue, a.res.Hours = cents(total), cents(revenue), hours
}

// nothingFound lists the types evaluated without a finding, with what fell
// short; a type with a finding or skipped is not listed.
func (a *analysis) nothingFound() {
	done := map[string]bool{}
	for _, r := range a.res.Recommendations {
		done[r.Type] = true
	}
	for _, s := range a.res.Skipped {
		done[s.Type] = true
	}
	a.res.NothingFound = []Skipped{}
	for _, typ := range Types {
		if done[typ] {
			continue
		}
		reasons := a.nothing[typ]
		if len(reasons) == 0 {
			reasons = []string{"evaluated: no finding"}
		}
		a.res.NothingFound = append(a.res.NothingFound, Skipped{Type: typ, Reason: strings.Join(firstN(reasons, 5), "; ")})
	}
}
