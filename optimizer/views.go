package optimizer

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

const apiTime = "2006-01-02T15:04:05"

// ms converts seconds to milliseconds with one decimal; nil when unknown.
func ms(sec float64) *float64 {
	if math.IsNaN(sec) || math.IsInf(sec, 0) {
		return nil
	}
	v := tenths(sec * 1000)
	return &v
}

// money rounds dollars to a hundredth of a cent: per-call costs are small.
func money(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// count rounds a Prometheus increase, which extrapolates, to whole calls.
func count(v float64) float64 { return math.Round(v) }

func percent(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return tenths(part / whole * 100)
}

func avgLatency(sum, n float64) *float64 {
	if n <= 0 {
		return nil
	}
	return ms(sum / n)
}

// NewReport renders a snapshot and its analysis.
func NewReport(s *Snapshot, res Result, pl plans.Config, generated time.Time) *Report {
	r := &Report{Days: s.Days, GeneratedAt: generated.UTC()}
	total, cost := s.TotalCalls(), s.TotalCost()
	r.Meta = Meta{Source: s.Source, SinceExporterStart: s.SinceStart, WindowStart: s.Start.UTC(), WindowEnd: s.End.UTC(),
		WindowSeconds: math.Round(s.Window.Seconds()), GeneratedAt: r.GeneratedAt, Missing: s.Missing, RecordingRules: s.RecordingRules,
		UnpricedCalls: map[string]float64{}, UnpricedSharePercent: percent(s.UnpricedCalls(), total)}
	for reason, n := range s.Unpriced {
		if count(n) > 0 {
			r.Meta.UnpricedCalls[reason] = count(n)
		}
	}

	r.Overview = Overview{TotalAPICalls: count(total), TotalCost: money(cost), CostPerCall: 0,
		PeriodStart: s.Start.UTC().Format(apiTime), PeriodEnd: s.End.UTC().Format(apiTime),
		ByService: map[string]ServiceSummary{}, ByUserCount: s.userCount()}
	if total > 0 {
		r.Overview.CostPerCall = math.Round(cost/total*1e6) / 1e6
	}
	if a := s.Anonymous; a != nil {
		r.Overview.AnonymousCalls, r.Overview.AnonymousCost = count(a.Calls), money(a.Cost)
	}
	if o := s.Other; o != nil {
		r.Overview.OtherCalls, r.Overview.OtherCost = count(o.Calls), money(o.Cost)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		sv := s.Services[name]
		r.Overview.ByService[name] = ServiceSummary{Calls: count(sv.Calls), Cost: money(sv.Cost + sv.Egress),
			AvgLatencyMs: avgLatency(sv.LatencySum, sv.LatencyCount), UniqueUsers: sv.UniqueUsers}
		r.Services = append(r.Services, ServiceRow{ServiceName: name, TotalCalls: count(sv.Calls), TotalCost: money(sv.Cost + sv.Egress),
			AvgLatencyMs: avgLatency(sv.LatencySum, sv.LatencyCount), SuccessRate: percent(sv.Calls-sv.Errors, sv.Calls),
			ErrorRate: percent(sv.Errors, sv.Calls), UniqueUsers: sv.UniqueUsers, DuplicateRate: percent(sv.Duplicates, sv.Calls),
			Bytes: math.Round(sv.Bytes)})
	}
	sort.SliceStable(r.Services, func(i, j int) bool { return r.Services[i].TotalCalls > r.Services[j].TotalCalls })

	r.Patterns = patterns(s)
	r.Users = userRows(s, pl)
	r.Costs = costs(s)
	r.ProjectedMonth = r.Costs.ProjectedMonthlyCost
	r.Optimization = optimization(res)
	r.Performance = performance(s)
	r.Quotas = tierQuotas(s, pl)
	r.Hourly = s.Hourly
	if r.Services == nil {
		r.Services = []ServiceRow{}
	}
	return r
}

func patterns(s *Snapshot) Patterns {
	p := Patterns{PeakHours: []HourCalls{}, PeakDays: []DayCalls{}, PopularEndpoints: []EndpointRow{},
		UsageTrends: Trends{DailyCalls: []float64{}, DailyCosts: []float64{}, Dates: []string{}}}
	for h, n := range s.Hourly {
		if count(n) > 0 {
			p.PeakHours = append(p.PeakHours, HourCalls{Hour: h, Calls: count(n)})
		}
	}
	sort.SliceStable(p.PeakHours, func(i, j int) bool { return p.PeakHours[i].Calls > p.PeakHours[j].Calls })
	p.PeakHours = p.PeakHours[:min(len(p.PeakHours), 3)]
	var weekday [7]float64
	for _, d := range s.Daily {
		weekday[d.Date.Weekday()] += d.Calls
		p.UsageTrends.DailyCalls = append(p.UsageTrends.DailyCalls, count(d.Calls))
		p.UsageTrends.DailyCosts = append(p.UsageTrends.DailyCosts, money(d.Cost))
		p.UsageTrends.Dates = append(p.UsageTrends.Dates, d.Date.Format("2006-01-02"))
	}
	for wd, n := range weekday {
		if count(n) > 0 {
			p.PeakDays = append(p.PeakDays, DayCalls{Day: time.Weekday(wd).String(), Calls: count(n)})
		}
	}
	sort.SliceStable(p.PeakDays, func(i, j int) bool { return p.PeakDays[i].Calls > p.PeakDays[j].Calls })
	p.PeakDays = p.PeakDays[:min(len(p.PeakDays), 3)]
	for _, route := range slices.Sorted(maps.Keys(s.Endpoints)) {
		ep := s.Endpoints[route]
		if count(ep.Calls) == 0 {
			continue
		}
		p.PopularEndpoints = append(p.PopularEndpoints, EndpointRow{Endpoint: route, Service: ep.Service, Calls: count(ep.Calls),
			AvgLatencyMs: avgLatency(ep.LatencySum, ep.LatencyCount), ErrorRate: percent(ep.Errors, ep.Calls)})
	}
	sort.SliceStable(p.PopularEndpoints, func(i, j int) bool { return p.PopularEndpoints[i].Calls > p.PopularEndpoints[j].Calls })
	p.PopularEndpoints = p.PopularEndpoints[:min(len(p.PopularEndpoints), 10)]
	return p
}

// quotaPercent is the higher of a user's call and token use of their tier's
// allowance, in percent; 0 for unlimited or unknown tiers.
func quotaPercent(pl plans.Config, q QuotaUse) float64 {
	t, ok := pl.Lookup(q.Tier)
	if !ok || t.Calls == nil || t.Tokens == nil {
		return 0
	}
	return tenths(math.Max(utilization(*t.Calls, q.Calls), utilization(*t.Tokens, q.Tokens)))
}

func userRows(s *Snapshot, pl plans.Config) []UserRow {
	quotaOf := map[string]QuotaUse{}
	for _, q := range s.Quotas {
		quotaOf[q.User] = q
	}
	rows := make([]UserRow, 0, len(s.Users))
	for _, name := range slices.Sorted(maps.Keys(s.Users)) {
		u := s.Users[name]
		by := make(map[string]float64, len(u.ByService))
		for svc, n := range u.ByService {
			by[svc] = count(n)
		}
		row := UserRow{UserID: name, Username: name, TotalCalls: count(u.Calls), TotalCost: money(u.Cost),
			TotalTokens: math.Round(u.Tokens), ByService: by, SubscriptionTier: u.Tier}
		if q, ok := quotaOf[name]; ok {
			row.QuotaUsedPercent = quotaPercent(pl, q)
		}
		rows = append(rows, row)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].TotalCalls > rows[j].TotalCalls })
	return rows
}

func costs(s *Snapshot) Costs {
	c := Costs{TotalCost: money(s.TotalCost()), CostBreakdown: map[string]float64{}, CostTrends: []DayCost{},
		CostPerService: map[string]float64{}, CostByModel: map[string]float64{}}
	c.ProjectedMonthlyCost = cents(s.Monthly(s.TotalCost()))
	for name, sv := range s.Services {
		c.CostBreakdown[name] = money(sv.Cost + sv.Egress)
		c.CostPerService[name] = money(sv.Cost + sv.Egress)
		c.EgressCost += sv.Egress
	}
	c.EgressCost = money(c.EgressCost)
	for name, m := range s.Models {
		c.CostByModel[name] = money(m.Cost)
	}
	for _, d := range s.Daily {
		c.CostTrends = append(c.CostTrends, DayCost{Date: d.Date.Format("2006-01-02"), Cost: money(d.Cost)})
	}
	// Cost per user: of every identified user (labelled, or folded under
	// __other__) over their count.
	var users float64
	for _, u := range s.Users {
		users += u.Cost
	}
	if s.Other != nil {
		users += s.Other.Cost
	}
	if n := s.userCount(); n > 0 {
		c.CostPerUser = money(users / float64(n))
	}
	if s.Anonymous != nil {
		c.AnonymousCost = money(s.Anonymous.Cost)
	}
	if len(s.StorageBytes) > 0 {
		c.StorageByVolume = map[string]StorageVolume{}
		var monthly float64
		for vol, b := range s.StorageBytes {
			m := pricing.StorageMonthlyCost(b, s.StoragePerGBMonth)
			monthly += m
			c.StorageByVolume[vol] = StorageVolume{Bytes: b, MonthlyCost: money(m)}
		}
		c.StorageMonthlyCost = money(monthly)
		// The window's share of a month (30 days), as Monthly scales the other way.
		c.StorageCost = money(monthly / s.Monthly(1))
		c.CostBreakdown["storage"] = c.StorageCost
	}
	if len(s.Orgs) > 0 {
		c.CostByOrg = costByOrg(s)
	}
	c.UnpricedCalls = count(s.UnpricedCalls())
	c.UnpricedSharePercent = percent(s.UnpricedCalls(), s.TotalCalls())
	return c
}

func optimization(res Result) Optimization {
	o := Optimization{Recommendations: make([]RecommendationRow, 0, len(res.Recommendations)),
		TotalPotentialSavings: res.TotalSavings, TotalRevenueOpportunity: res.TotalRevenue,
		EstimatedImplementationTime: fmt.Sprintf("%d hours", res.Hours), Skipped: res.Skipped, NothingFound: res.NothingFound}
	for _, r := range res.Recommendations {
		o.Recommendations = append(o.Recommendations, RecommendationRow{Recommendation: r,
			PotentialSavings: fmt.Sprintf("$%.2f/month", r.Savings)})
	}
	if o.Skipped == nil {
		o.Skipped = []Skipped{}
	}
	if o.NothingFound == nil {
		o.NothingFound = []Skipped{}
	}
	return o
}

func performance(s *Snapshot) Performance {
	var calls, errs, timeouts float64
	for _, sv := range s.Services {
		calls += sv.Calls
		errs += sv.Errors
		timeouts += sv.Timeouts
	}
	p := Performance{AvgLatencyMs: ms(s.Latency.Avg), P50LatencyMs: ms(s.Latency.P50), P95LatencyMs: ms(s.Latency.P95),
		P99LatencyMs: ms(s.Latency.P99), SuccessRate: percent(calls-errs, calls), ErrorRate: percent(errs, calls),
		TimeoutRate: percent(timeouts, calls), ByEndpoint: map[string]EndpointPerformance{},
		ByService: map[string]ServicePerformance{}}
	for name, sv := range s.Services {
		if count(sv.Calls) == 0 {
			continue
		}
		sp := ServicePerformance{Calls: count(sv.Calls), AvgLatencyMs: avgLatency(sv.LatencySum, sv.LatencyCount),
			SuccessRate: percent(sv.Calls-sv.Errors, sv.Calls), ErrorRate: percent(sv.Errors, sv.Calls)}
		if sv.LatencyCount > 0 {
			sp.P50LatencyMs, sp.P95LatencyMs, sp.P99LatencyMs = ms(sv.P50), ms(sv.P95), ms(sv.P99)
		}
		p.ByService[name] = sp
	}
	for route, ep := range s.Endpoints {
		if count(ep.Calls) == 0 {
			continue
		}
		p.ByEndpoint[route] = EndpointPerformance{AvgLatencyMs: avgLatency(ep.LatencySum, ep.LatencyCount),
			SuccessRate: percent(ep.Calls-ep.Errors, ep.Calls), ErrorRate: percent(ep.Errors, ep.Calls), Calls: count(ep.Calls)}
	}
	return p
}

// pooled multiplies a per-user limit by the users on the tier.
func pooled(l *plans.Limit, users int) any {
	if l == nil || l.IsUnlimited() {
		return "unlimited"
	}
	return int64(*l) * int64(users)
}

func tierQuotas(s *Snapshot, pl plans.Config) map[string]TierQuota {
	out := map[string]TierQuota{}
	by := map[string][]QuotaUse{}
	for _, q := range s.Quotas {
		by[q.Tier] = append(by[q.Tier], q)
	}
	for _, t := range pl.Tiers {
		uses := by[t.Name]
		tq := TierQuota{Users: len(uses), Limit: pooled(t.Calls, 1), TokensLimit: pooled(t.Tokens, 1),
			PooledLimit: pooled(t.Calls, len(uses)), PooledTokensLimit: pooled(t.Tokens, len(uses))}
		for _, q := range uses {
			tq.PooledUsed += q.Calls
			tq.PooledTokensUsed += q.Tokens
			if (t.Calls != nil && !fits(*t.Calls, q.Calls)) || (t.Tokens != nil && !fits(*t.Tokens, q.Tokens)) {
				tq.UsersOverQuota++
			}
			if !q.PeriodStart.IsZero() {
				tq.PeriodStart, tq.PeriodEnd = q.PeriodStart.Format(apiTime), q.PeriodEnd.Format(apiTime)
			}
		}
		if n := len(uses); n > 0 {
			tq.Used, tq.TokensUsed = tenths(tq.PooledUsed/float64(n)), tenths(tq.PooledTokensUsed/float64(n))
		}
		if l, ok := tq.Limit.(int64); ok && l > 0 {
			tq.Percentage = percent(tq.Used, float64(l))
		}
		if l, ok := tq.PooledLimit.(int64); ok && l > 0 {
			tq.PooledPercentage = percent(tq.PooledUsed, float64(l))
		}
		out[t.Name] = tq
	}
	return out
}

// costByOrg is each organisation's calls and cost, plus an even share of
// the window's infrastructure cost among the organisations with a label of
// their own and calls or cost in the window (__other__ is many, of unknown
// number: it takes no share).
func costByOrg(s *Snapshot) map[string]OrgCost {
	sharing := func(name string, o *OrgUsage) bool { return name != OtherUser && (o.Calls > 0 || o.Cost > 0) }
	n := 0
	for name, o := range s.Orgs {
		if sharing(name, o) {
			n++
		}
	}
	out := make(map[string]OrgCost, len(s.Orgs))
	for name, o := range s.Orgs {
		oc := OrgCost{Calls: count(o.Calls), Cost: money(o.Cost)}
		if sharing(name, o) {
			oc.SharedInfrastructureCost = money(s.SharedInfrastructureHourly * s.Window.Hours() / float64(n))
		}
		oc.TotalCost = money(o.Cost + oc.SharedInfrastructureCost)
		out[name] = oc
	}
	return out
}
