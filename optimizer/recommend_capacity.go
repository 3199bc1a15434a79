package optimizer

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

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
		a.none(TypeResourceOptimization, "mean GPU utilisation %.0f%%, not under %.0f%%", g.Utilization*100, a.cfg.GPU.TargetUtilization*100)
		return
	}
	saved := (1 - g.Utilization) * a.cfg.GPU.RecoverableFraction * float64(g.GPUs) * a.cfg.Costs.GPUHourly * 720
	a.add(Recommendation{Type: TypeResourceOptimization, subject: "gpu", claims: map[pool]float64{poolGPU: saved},
		Current:     fmt.Sprintf("%d GPUs at %.0f%% utilisation", g.GPUs, g.Utilization*100),
		Recommended: "consolidate GPU workloads (batching, fewer or smaller instances)", Savings: saved, Effort: "medium",
		Impact: fmt.Sprintf("%.0f%% of GPU time idle", (1-g.Utilization)*100),
		Evidence: map[string]any{"mean_utilization_percent": tenths(g.Utilization * 100), "gpus": g.GPUs, "metric": g.Metric,
			"gpu_hourly_cost": a.cfg.Costs.GPUHourly, "recoverable_fraction": a.cfg.GPU.RecoverableFraction}}, false)
}

// batchable returns the monthly cost of batchable traffic and what a batch
// API would save on it: the price table's batch rate where the model has
// one, else the configured discount. costs are the batchable dollars by
// pool, claims the savings.
func (a *analysis) batchable() (cost, saved float64, costs, claims map[pool]float64, evidence map[string]any) {
	evidence, costs, claims = map[string]any{}, map[pool]float64{}, map[pool]float64{}
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
			costs[modelPool(name, model)] += mc
			claims[modelPool(name, model)] += mc * disc
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
		costs = mergeClaims(costs, a.serviceClaims(ep.Service, c))
		claims = mergeClaims(claims, a.serviceClaims(ep.Service, c*a.cfg.Batch.Discount))
		evidence[route] = cents(c)
	}
	return cost, saved, costs, claims, evidence
}

func (a *analysis) batchProcessing() {
	cost, saved, _, claims, ev := a.batchable()
	if cost == 0 {
		a.skip(TypeBatchProcessing, "no cost on batchable traffic (batch.services: %s)", strings.Join(a.cfg.Batch.Services, ", "))
		return
	}
	ev["batchable_monthly_cost"] = cents(cost)
	a.add(Recommendation{Type: TypeBatchProcessing, Current: "synchronous calls for non-urgent work",
		Recommended: "batch API for " + strings.Join(append(append([]string(nil), a.cfg.Batch.Services...), a.cfg.Batch.Routes...), ", "),
		Savings:     saved, Effort: "medium", Impact: fmt.Sprintf("%.0f%% cheaper batchable traffic", saved/cost*100), Evidence: ev,
		Group: "batchable", claims: claims}, false)
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
		a.skip(TypeJobScheduling, "no hourly profile (the exporter's rollups or Prometheus history)")
		return
	}
	cost, _, costs, _, _ := a.batchable()
	if cost == 0 {
		a.skip(TypeJobScheduling, "no cost on batchable traffic")
		return
	}
	// The system's busiest hours, and the share of the batchable traffic's
	// own calls that falls in them.
	_, hours := busiest(a.s.Hourly, a.cfg.Scheduling.BusiestHours)
	services := slices.Clone(a.cfg.Batch.Services)
	for _, route := range a.cfg.Batch.Routes {
		if ep := a.s.Endpoints[route]; ep != nil && !slices.Contains(services, ep.Service) {
			services = append(services, ep.Service) // a route takes its service's profile
		}
	}
	var inPeak, all float64
	for _, name := range services {
		h := a.s.HourlyByService[name]
		if len(h) != 24 {
			continue
		}
		for i, v := range h {
			all += v
			if slices.Contains(hours, i) {
				inPeak += v
			}
		}
	}
	if all == 0 {
		a.skip(TypeJobScheduling, "no hourly profile of the batchable services (%s)", strings.Join(services, ", "))
		return
	}
	share := inPeak / all
	if share == 0 {
		a.none(TypeJobScheduling, "no batchable call in the busiest hours %v", hours)
		return
	}
	f := share * a.cfg.Scheduling.OffPeakDiscount
	claims := map[pool]float64{}
	for p, c := range costs {
		claims[p] = c * f
	}
	a.add(Recommendation{Type: TypeJobScheduling, subject: "batchable work off-peak", Current: fmt.Sprintf("batchable work in the busiest hours %v", hours),
		Recommended: "schedule batchable work off-peak", Savings: cost * f, Effort: "low", Group: "batchable", claims: claims,
		Impact: fmt.Sprintf("%.0f%% of the batchable calls fall in the %d busiest hours", share*100, len(hours)),
		Evidence: map[string]any{"busiest_hours_utc": hours, "batchable_share_percent": tenths(share * 100),
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
		a.none(TypePeakShifting, "peak-to-mean ratio %.2f, not over %.1f", peak/math.Max(mean, 1e-12), a.cfg.Scheduling.PeakToMean)
		return
	}
	ratio := peak / mean
	r := Recommendation{Type: TypePeakShifting, subject: "peak", Group: "infrastructure", Current: fmt.Sprintf("peak-to-mean ratio %.1f", ratio),
		Recommended: "incentivise off-peak use (pricing, quotas by hour)", Effort: "medium",
		Impact:   fmt.Sprintf("the busiest hour carries %.1fx the mean load", ratio),
		Evidence: map[string]any{"peak_calls_per_hour": math.Round(peak), "mean_calls_per_hour": math.Round(mean)}}
	if h := a.cfg.Costs.InfrastructureHourly; h > 0 {
		r.Savings = (peak - mean) / peak * h * 720 * a.cfg.Scheduling.PeakShiftFraction
		r.claims = map[pool]float64{poolInfrastructure: r.Savings}
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
		a.none(TypeAutoScaling, "quietest hour at %.0f%% of the busiest, not under %.0f%%", low/math.Max(peak, 1e-12)*100,
			a.cfg.Scheduling.MinToMax*100)
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
		Savings: saved, Effort: "high", Group: "infrastructure", claims: map[pool]float64{poolInfrastructure: saved}, Impact: fmt.Sprintf("the quietest hour has %.0f%% of the busiest hour's load", low/peak*100),
		Evidence: map[string]any{"min_to_max": tenths(low / peak * 100), "infrastructure_hourly_cost": h}}, false)
}
