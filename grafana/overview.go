package grafana

//lint:file-ignore SA1019 the v1 dashboard schema is what file provisioning loads on Grafana 11 and 12 (v2 needs feature flags)

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/barchart"
	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/piechart"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Selectors shared by the panels.
const (
	svc      = `api_service=~"$api_service"`
	notUsers = `user!~"__other__|__anonymous__"`
)

// costOver is token, per-call and egress cost of the selected services over
// the time range, shifted by offset (egress may have no series).
func costOver(offset string) string {
	return fmt.Sprintf(`sum(increase(usage_cost_dollars_total{%s}[$__range]%s)) + (sum(increase(usage_egress_cost_dollars_total{%s}[$__range]%s)) or vector(0))`,
		svc, offset, svc, offset)
}

// kpi is a stat card: the total over the time range and over the range
// before it (the change against the previous period), and the rate now
// with its sparkline.
func kpi(l *layout, title, description, unit, total, previous, now, nowLegend string) *stat.PanelBuilder {
	return place(l, 6, 5, stat.NewPanelBuilder().Title(title).Description(description).Unit(unit).
		WithTarget(instant("A", total, "this period")).
		WithTarget(instant("B", previous, "previous period")).
		WithTarget(query("C", now, nowLegend)).
		ReduceOptions(reduce("lastNotNull")).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		TextMode(common.BigValueTextModeValueAndName).
		Thresholds(thresholds("blue")))
}

func overview() (dashboard.Dashboard, error) {
	l := &layout{}
	b := board("usage-overview", "Usage overview",
		"Calls, cost, latency, quotas and recommendations across the API gateway and LiteLLM: what the old usage page showed, from Prometheus.").
		WithVariable(labelVariable("api_service", "api_service", "usage_requests_total", true)).
		WithVariable(labelVariable("tier", "tier", "usage_user_requests_total", true))

	calls := fmt.Sprintf(`sum(increase(api_service_code:usage_requests_total:sum{%s}[%%s]))`, svc)
	b = b.WithRow(l.row("This period")).
		WithPanel(kpi(l, "Total calls", "Requests in the time range; the previous period is the same length before it; now is calls per hour.", "short",
			fmt.Sprintf(calls, "$__range"),
			fmt.Sprintf(`sum(increase(api_service_code:usage_requests_total:sum{%s}[$__range] offset $__range)) or vector(0)`, svc),
			fmt.Sprintf(`sum(rate(usage_requests_total{%s}[$__rate_interval])) * 3600`, svc), "per hour now")).
		WithPanel(kpi(l, "Total cost", "Token, per-call and egress cost in the time range (unpriced calls excluded: see Models and cost).", "currencyUSD",
			costOver(""),
			fmt.Sprintf(`(%s) or vector(0)`, costOver(" offset $__range")),
			fmt.Sprintf(`(sum(rate(usage_cost_dollars_total{%s}[$__rate_interval])) + (sum(rate(usage_egress_cost_dollars_total{%s}[$__rate_interval])) or vector(0))) * 3600`, svc, svc),
			"per hour now")).
		WithPanel(kpi(l, "Cost per call", "Cost divided by calls over the time range.", "currencyUSD",
			fmt.Sprintf(`(%s) / %s`, costOver(""), fmt.Sprintf(calls, "$__range")),
			fmt.Sprintf(`(sum(increase(usage_cost_dollars_total{%s}[$__range] offset $__range)) / sum(increase(api_service_code:usage_requests_total:sum{%s}[$__range] offset $__range))) or vector(0)`, svc, svc),
			fmt.Sprintf(`sum(rate(usage_cost_dollars_total{%s}[$__rate_interval])) / sum(rate(usage_requests_total{%s}[$__rate_interval]))`, svc, svc),
			"now")).
		WithPanel(kpi(l, "Active users", "Users with calls in the time range, among those with a label of their own (users.max_users); the optimizer's by_user_count counts every user.", "short",
			fmt.Sprintf(`count(sum by (user) (increase(usage_user_requests_total{%s, %s, tier=~"$tier"}[$__range])) > 0)`, notUsers, svc),
			fmt.Sprintf(`count(sum by (user) (increase(usage_user_requests_total{%s, %s, tier=~"$tier"}[$__range] offset $__range)) > 0) or vector(0)`, notUsers, svc),
			fmt.Sprintf(`count(sum by (user) (rate(usage_user_requests_total{%s, %s, tier=~"$tier"}[$__rate_interval])) > 0)`, notUsers, svc),
			"active now"))

	b = b.WithRow(l.row("Traffic")).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Calls by service").Unit("reqps").
			Description("Requests per second by api_service.").
			WithTarget(query("A", fmt.Sprintf(`sum by (api_service) (rate(usage_requests_total{%s}[$__rate_interval]))`, svc), "{{api_service}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(30).
			Legend(legendTable("mean", "max", "lastNotNull")))).
		WithPanel(place(l, 12, 8, heatmap.NewPanelBuilder().Title("Calls by hour of day, day by day (UTC)").Unit("short").
			Description("Each column a day, each row an hour of the day (UTC): the peak hours. Each cell is the recorded hourly increase (api_service_code:usage_requests:increase1h) at the end of that hour, labelled by the hour.").
			Interval("1d").
			WithTarget(query("A", fmt.Sprintf(`last_over_time((sum(api_service_code:usage_requests:increase1h{%s}) * on () group_left (hour) count_values("hour", hour()))[1d:1m])`, svc), "{{hour}}")).
			Calculate(false).
			Color(heatmap.NewHeatmapColorOptionsBuilder().Mode(heatmap.HeatmapColorModeScheme).Scheme("Oranges").Scale(heatmap.HeatmapColorScaleExponential).Exponent(0.5).Steps(64)).
			RowsFrame(heatmap.NewRowsHeatmapOptionsBuilder().Layout(common.HeatmapCellLayoutUnknown)))).
		WithPanel(place(l, 12, 8, barchart.NewPanelBuilder().Title("Calls by hour of day (optimizer window)").Unit("short").
			Description("The optimizer's calls by UTC hour of day over its analysis window (usage_hourly_requests).").
			WithTarget(tableQuery("A", `max by (hour) (usage_hourly_requests)`)).
			XField("hour").
			WithTransformation(dashboard.DataTransformerConfig{Id: "sortBy", Options: map[string]any{"sort": []map[string]any{{"field": "hour"}}}}).
			WithTransformation(dashboard.DataTransformerConfig{Id: "convertFieldType", Options: map[string]any{"conversions": []map[string]any{{"targetField": "hour", "destinationType": "number"}}}}).
			WithTransformation(organize([]string{"Time"}, map[string]string{"Value": "calls"})))).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Success, errors and timeouts").Unit("percentunit").Min(0).
			Description("Share of requests answered 2xx/3xx, 4xx, 5xx, and timeouts (408, 504).").
			WithTarget(query("A", fmt.Sprintf(`sum(rate(usage_requests_total{%s, code=~"[23].."}[$__rate_interval])) / sum(rate(usage_requests_total{%s}[$__rate_interval]))`, svc, svc), "success")).
			WithTarget(query("B", fmt.Sprintf(`sum(rate(usage_requests_total{%s, code=~"4.."}[$__rate_interval])) / sum(rate(usage_requests_total{%s}[$__rate_interval])) or vector(0)`, svc, svc), "client errors")).
			WithTarget(query("C", fmt.Sprintf(`sum(rate(usage_requests_total{%s, code=~"5.."}[$__rate_interval])) / sum(rate(usage_requests_total{%s}[$__rate_interval])) or vector(0)`, svc, svc), "server errors")).
			WithTarget(query("D", fmt.Sprintf(`sum(rate(usage_requests_total{%s, code=~"408|504"}[$__rate_interval])) / sum(rate(usage_requests_total{%s}[$__rate_interval])) or vector(0)`, svc, svc), "timeouts"))))

	b = b.WithRow(l.row("Cost")).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Daily cost and projected month").Unit("currencyUSD").
			Description("Cost per UTC day; the projection is the last day's rate for 30 days (recording rule usage:cost_dollars:projected30d) and the optimizer's projection from its window.").
			Interval("1d").
			WithTarget(query("A", fmt.Sprintf(`sum(increase(usage_cost_dollars_total{%s}[1d])) + (sum(increase(usage_egress_cost_dollars_total{%s}[1d])) or vector(0))`, svc, svc), "daily cost")).
			WithTarget(query("B", `usage:cost_dollars:projected30d`, "projected 30 days (last day's rate)")).
			WithTarget(query("C", `max(usage_projected_monthly_cost_dollars)`, "projected month (optimizer)")).
			DrawStyle(common.GraphDrawStyleBars).FillOpacity(60).
			OverrideByName("projected 30 days (last day's rate)", []dashboard.DynamicConfigValue{{Id: "custom.drawStyle", Value: "line"}}).
			OverrideByName("projected month (optimizer)", []dashboard.DynamicConfigValue{{Id: "custom.drawStyle", Value: "line"}}))).
		WithPanel(place(l, 6, 8, piechart.NewPanelBuilder().Title("Cost by service").Unit("currencyUSD").
			WithTarget(instant("A", fmt.Sprintf(`sum by (api_service) (increase(usage_cost_dollars_total{%s}[$__range]))`, svc), "{{api_service}}")).
			PieType(piechart.PieChartTypeDonut).ReduceOptions(reduce("lastNotNull")))).
		WithPanel(place(l, 6, 8, bargauge.NewPanelBuilder().Title("Cost by model (top 10)").Unit("currencyUSD").
			WithTarget(instant("A", fmt.Sprintf(`topk(10, sum by (model) (increase(usage_cost_dollars_total{%s, model!=""}[$__range])))`, svc), "{{model}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(thresholds("blue"))))

	b = b.WithRow(l.row("Organisations")).
		WithPanel(place(l, 12, 8, bargauge.NewPanelBuilder().Title("Calls by organisation (top 10)").Unit("short").
			Description("Requests by the lines' org_id (organisations past the exporter's orgs.max_orgs are __other__).").
			WithTarget(instant("A", fmt.Sprintf(`topk(10, sum by (org) (increase(usage_org_requests_total{%s}[$__range])))`, svc), "{{org}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(thresholds("blue")))).
		WithPanel(place(l, 12, 8, bargauge.NewPanelBuilder().Title("Cost by organisation (top 10)").Unit("currencyUSD").
			Description("The calls' cost from the logs, or LiteLLM's spend by its org_id label, whichever is the source of spend.").
			WithTarget(instant("A", fmt.Sprintf(`topk(10, sum by (org) (increase(usage_org_cost_dollars_total{%s}[$__range])))`, svc), "{{org}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(thresholds("blue"))))

	b = b.WithRow(l.row("Latency")).
		WithPanel(place(l, 24, 8, timeseries.NewPanelBuilder().Title("Latency p50 / p95 / p99 by service").Unit("s").
			Description("From the request-time histogram: its native buckets where Prometheus stores them, else the classic _bucket series (the first query that has data wins).").
			WithTarget(query("A", latencyQuantile(0.5), "p50 {{api_service}}")).
			WithTarget(query("B", latencyQuantile(0.95), "p95 {{api_service}}")).
			WithTarget(query("C", latencyQuantile(0.99), "p99 {{api_service}}")).
			Legend(legendTable("mean", "max", "lastNotNull"))))

	b = b.WithRow(l.row("Recommendations and quotas")).
		WithPanel(place(l, 24, 9, table.NewPanelBuilder().Title("Recommendations").
			Description("The optimizer's findings by monthly savings (revenue for plan_upgrade and billing_model); counted is what each adds to the total once alternatives and overlaps are taken out. Grafana's Inspect > Data exports CSV.").
			WithTarget(tableQuery("A", `max by (id, type, priority, current, recommended, effort) (usage_recommendation_info) * on (id) group_right (type, priority, current, recommended, effort) max by (id) (usage_recommendation_savings_dollars)`)).
			WithTarget(tableQuery("B", `max by (id) (usage_recommendation_counted_savings_dollars)`)).
			WithTransformation(merge).
			WithTransformation(organize([]string{"Time"}, map[string]string{"Value #A": "savings / month", "Value #B": "counted"})).
			Unit("currencyUSD").
			OverrideByName("id", []dashboard.DynamicConfigValue{{Id: "unit", Value: "string"}}).
			SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("savings / month").Desc(true)}).
			Footer(footer()))).
		WithPanel(place(l, 8, 9, bargauge.NewPanelBuilder().Title("Quota use by tier").Unit("percentunit").Min(0).Max(1).
			Description("Average share of the allowance used this period by the tier's users (green below 60%, yellow to 80%, red above).").
			WithTarget(instant("A", fmt.Sprintf(`avg by (tier, resource) (max without (instance) (usage_quota_used{%s, tier=~"$tier"}) / on (tier, resource) group_left max by (tier, resource) (usage_quota_limit))`, notUsers), "{{tier}} {{resource}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(quotaThresholds()))).
		WithPanel(place(l, 16, 9, topUsers()))
	return b.Build()
}

// latencyQuantile is the quantile per service from the native histogram, or
// from the classic buckets where there is none.
func latencyQuantile(q float64) string {
	return fmt.Sprintf(`histogram_quantile(%g, sum by (api_service) (rate(usage_request_duration_seconds{%s}[$__rate_interval])))
or
histogram_quantile(%g, sum by (api_service, le) (rate(usage_request_duration_seconds_bucket{%s}[$__rate_interval])))`, q, svc, q, svc)
}

// topUsers is the table of the heaviest users, each row a link to the User
// dashboard.
func topUsers() *table.PanelBuilder {
	users := fmt.Sprintf(`topk(20, sum by (user, tier) (increase(usage_user_requests_total{%s, %s, tier=~"$tier"}[$__range])))`, notUsers, svc)
	return table.NewPanelBuilder().Title("Top users").
		Description("The 20 users with most calls in the time range, their cost and quota use this period. Click a user for their dashboard.").
		WithTarget(tableQuery("A", users)).
		WithTarget(tableQuery("B", fmt.Sprintf(`sum by (user, tier) (increase(usage_user_cost_dollars_total{%s, tier=~"$tier"}[$__range])) and on (user, tier) %s`, notUsers, users))).
		WithTarget(tableQuery("C", fmt.Sprintf(`max by (user, tier) (max without (instance) (usage_quota_used{%s, resource="calls", tier=~"$tier"}) / on (tier, resource) group_left max by (tier, resource) (usage_quota_limit)) and on (user, tier) %s`, notUsers, users))).
		WithTransformation(merge).
		WithTransformation(organize([]string{"Time"}, map[string]string{"Value #A": "calls", "Value #B": "cost", "Value #C": "calls quota used"})).
		OverrideByName("cost", []dashboard.DynamicConfigValue{{Id: "unit", Value: "currencyUSD"}}).
		OverrideByName("calls quota used", []dashboard.DynamicConfigValue{{Id: "unit", Value: "percentunit"}}).
		OverrideByName("user", []dashboard.DynamicConfigValue{{Id: "links", Value: []map[string]any{{
			"title": "User dashboard",
			"url":   "/d/usage-user/usage-user?var-user=${__value.raw}&var-datasource=${datasource}&${__url_time_range}",
		}}}}).
		Unit("short").
		SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("calls").Desc(true)}).
		Footer(footer())
}
