package optimizer

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The series of the metric contract the optimizer publishes (DESIGN.md).
var (
	recInfoDesc = prometheus.NewDesc("usage_recommendation_info",
		"A current recommendation of the background analysis; always 1.",
		[]string{"id", "type", "priority", "current", "recommended", "effort"}, nil)
	recSavingsDesc = prometheus.NewDesc("usage_recommendation_savings_dollars",
		"Potential monthly savings of a recommendation (revenue gained for plan_upgrade and billing_model).",
		[]string{"id", "type"}, nil)
	recCountedDesc = prometheus.NewDesc("usage_recommendation_counted_savings_dollars",
		"What a recommendation adds to the total: 0 for an alternative of a better one on the same spend, less than its savings where a larger one took part of that spend first.",
		[]string{"id", "type"}, nil)
	totalSavingsDesc = prometheus.NewDesc("usage_recommendations_potential_savings_dollars",
		"Sum of the counted monthly savings of the current recommendations (revenue findings excluded): at most the spend they act on.", nil, nil)
	totalRevenueDesc = prometheus.NewDesc("usage_recommendations_revenue_opportunity_dollars",
		"Sum of the monthly revenue of the current plan_upgrade and billing_model findings.", nil, nil)
	skippedDesc = prometheus.NewDesc("usage_recommendation_skipped",
		"1 for a recommendation type the data did not allow to evaluate (see /api/v1/analytics/usage/optimization).",
		[]string{"type"}, nil)
	hourlyDesc = prometheus.NewDesc("usage_hourly_requests",
		"Requests by hour of day (UTC) over the analysis window; absent without a time series source.",
		[]string{"hour"}, nil)
	projectedDesc = prometheus.NewDesc("usage_projected_monthly_cost_dollars",
		"Cost of the analysis window scaled to 30 days.", nil, nil)
	resultAgeDesc = prometheus.NewDesc("usage_optimizer_result_age_seconds",
		"Age of the report behind these series: it grows while analyses fail, since the last good report is kept.", nil, nil)
)

// Collector serves the engine's current report as series, and its health.
type Collector struct{ e *Engine }

// Register adds the engine's series to reg.
func (e *Engine) Register(reg prometheus.Registerer) error {
	h := e.health
	for _, r := range []string{"success", "failure"} {
		h.runs.WithLabelValues(r)
	}
	for _, r := range []string{"hit", "computed", "shared", "failed"} {
		h.cache.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{h.runs, h.lastRun, h.lastSuccess, h.duration, h.sourceUp, h.cache,
		h.cacheUp, h.window, Collector{e}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Describe sends the descriptors.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{recInfoDesc, recSavingsDesc, recCountedDesc, totalSavingsDesc, totalRevenueDesc, skippedDesc,
		hourlyDesc, projectedDesc, resultAgeDesc} {
		ch <- d
	}
}

// Collect sends the current report's series; nothing before the first good one.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	r := c.e.Current()
	if r == nil {
		return
	}
	for _, rec := range r.Optimization.Recommendations {
		ch <- prometheus.MustNewConstMetric(recInfoDesc, prometheus.GaugeValue, 1,
			rec.ID, rec.Type, rec.Priority, rec.Current, rec.Recommended, rec.Effort)
		ch <- prometheus.MustNewConstMetric(recSavingsDesc, prometheus.GaugeValue, rec.Savings, rec.ID, rec.Type)
		ch <- prometheus.MustNewConstMetric(recCountedDesc, prometheus.GaugeValue, rec.CountedSavings, rec.ID, rec.Type)
	}
	skipped := map[string]bool{}
	for _, s := range r.Optimization.Skipped {
		if !skipped[s.Type] {
			skipped[s.Type] = true
			ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.GaugeValue, 1, s.Type)
		}
	}
	ch <- prometheus.MustNewConstMetric(totalSavingsDesc, prometheus.GaugeValue, r.Optimization.TotalPotentialSavings)
	ch <- prometheus.MustNewConstMetric(totalRevenueDesc, prometheus.GaugeValue, r.Optimization.TotalRevenueOpportunity)
	for h, n := range r.Hourly {
		ch <- prometheus.MustNewConstMetric(hourlyDesc, prometheus.GaugeValue, n, strconv.Itoa(h))
	}
	ch <- prometheus.MustNewConstMetric(projectedDesc, prometheus.GaugeValue, r.ProjectedMonth)
	ch <- prometheus.MustNewConstMetric(resultAgeDesc, prometheus.GaugeValue, c.e.Age(r).Seconds())
}
