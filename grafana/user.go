package grafana

//lint:file-ignore SA1019 the v1 dashboard schema is what file provisioning loads on Grafana 11 and 12 (v2 needs feature flags)

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

const theUser = `user=~"$user"`

// user is one user's (or several users') dashboard, reached from the
// overview's top users.
func user() (dashboard.Dashboard, error) {
	l := &layout{}
	single := func(title, unit, expr string) *stat.PanelBuilder {
		return place(l, 4, 4, stat.NewPanelBuilder().Title(title).Unit(unit).
			WithTarget(instant("A", expr, "")).
			ReduceOptions(reduce("lastNotNull")).ColorMode(common.BigValueColorModeValue).
			GraphMode(common.BigValueGraphModeNone).Thresholds(thresholds("blue")))
	}
	// The services this user called in the range: latency and errors are
	// per service and route, not per user (one series per user and route
	// would multiply the series by the routes).
	theirServices := fmt.Sprintf(`on (api_service) (sum by (api_service) (increase(usage_user_requests_total{%s}[$__range])) > 0)`, theUser)
	b := board("usage-user", "Usage user",
		"One user: calls, cost, tokens, quota used and remaining with the period end, the services used, and those services' latency and errors.").
		WithVariable(labelVariable("user", "user", "usage_user_requests_total", true)).
		WithRow(l.row("This period")).
		WithPanel(single("Calls", "short", fmt.Sprintf(`sum(increase(usage_user_requests_total{%s}[$__range]))`, theUser))).
		WithPanel(single("Cost", "currencyUSD", fmt.Sprintf(`sum(increase(usage_user_cost_dollars_total{%s}[$__range])) or vector(0)`, theUser))).
		WithPanel(single("Tokens", "short", fmt.Sprintf(`sum(increase(usage_user_tokens_total{%s}[$__range])) or vector(0)`, theUser))).
		WithPanel(single("Tier", "string", fmt.Sprintf(`max by (tier) (usage_user_requests_total{%s})`, theUser)).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Fields("/^tier$/").Values(false)).
			WithTransformation(dashboard.DataTransformerConfig{Id: "labelsToFields", Options: map[string]any{}})).
		WithPanel(single("Billing period ends", "dateTimeAsIso", `max(usage_quota_period_end_timestamp_seconds) * 1000`)).
		WithPanel(single("Calls quota remaining", "short",
			fmt.Sprintf(`clamp_min(max by (tier, resource) (usage_quota_limit{resource="calls"}) - on (tier, resource) group_right max by (tier, resource) (usage_quota_used{%s, resource="calls"}), 0)`, theUser))).
		WithPanel(place(l, 8, 6, bargauge.NewPanelBuilder().Title("Quota used this period").Unit("percentunit").Min(0).Max(1).
			Description("Used / allowance per resource (no bar for unlimited tiers).").
			WithTarget(instant("A", fmt.Sprintf(`max without (instance) (usage_quota_used{%s}) / on (tier, resource) group_left max by (tier, resource) (usage_quota_limit)`, theUser), "{{user}} {{resource}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(quotaThresholds()))).
		WithPanel(place(l, 16, 6, table.NewPanelBuilder().Title("Quota").
			Description("This period's use and allowance per resource, from the exporter's ledger.").
			WithTarget(tableQuery("A", fmt.Sprintf(`max by (user, tier, resource) (usage_quota_used{%s})`, theUser))).
			WithTarget(tableQuery("B", fmt.Sprintf(`max by (tier, resource) (usage_quota_limit) and on (tier) max by (tier) (usage_quota_used{%s})`, theUser))).
			WithTransformation(dashboard.DataTransformerConfig{Id: "joinByField", Options: map[string]any{"byField": "resource", "mode": "outer"}}).
			WithTransformation(organize([]string{"Time", "Time 1", "Time 2", "tier 2"}, map[string]string{"Value #A": "used", "Value #B": "allowance", "tier 1": "tier"})).
			Unit("short").Footer(footer()))).
		WithRow(l.row("Activity")).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Calls by service").Unit("reqps").
			WithTarget(query("A", fmt.Sprintf(`sum by (api_service) (rate(usage_user_requests_total{%s}[$__rate_interval]))`, theUser), "{{api_service}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(30))).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Cost and tokens").Unit("currencyUSD").
			WithTarget(query("A", fmt.Sprintf(`sum(rate(usage_user_cost_dollars_total{%s}[$__rate_interval])) * 3600`, theUser), "cost per hour")).
			WithTarget(query("B", fmt.Sprintf(`sum(rate(usage_user_tokens_total{%s}[$__rate_interval])) * 3600 or vector(0)`, theUser), "tokens per hour")).
			OverrideByName("tokens per hour", []dashboard.DynamicConfigValue{{Id: "unit", Value: "short"}, {Id: "custom.axisPlacement", Value: "right"}}))).
		WithPanel(place(l, 8, 8, table.NewPanelBuilder().Title("Services used").
			WithTarget(tableQuery("A", fmt.Sprintf(`sum by (api_service) (increase(usage_user_requests_total{%s}[$__range]))`, theUser))).
			WithTransformation(organize([]string{"Time"}, map[string]string{"Value": "calls"})).
			Unit("short").Footer(footer()))).
		WithPanel(place(l, 16, 8, table.NewPanelBuilder().Title("Routes of the services used").
			Description("Routes are counted per service, not per user: these are the busiest routes of the services this user called.").
			WithTarget(tableQuery("A", fmt.Sprintf(`topk(20, sum by (api_service, route) (increase(usage_requests_total[$__range])) and %s)`, theirServices))).
			WithTransformation(organize([]string{"Time"}, map[string]string{"Value": "calls (all users)"})).
			Unit("short").Footer(footer()))).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Latency p95 of the services used").Unit("s").
			WithTarget(query("A", fmt.Sprintf(`(histogram_quantile(0.95, sum by (api_service) (rate(usage_request_duration_seconds[$__rate_interval]))) or histogram_quantile(0.95, sum by (api_service, le) (rate(usage_request_duration_seconds_bucket[$__rate_interval])))) and %s`, theirServices), "p95 {{api_service}}")))).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Errors of the services used").Unit("percentunit").Min(0).
			WithTarget(query("A", fmt.Sprintf(`(sum by (api_service) (rate(usage_requests_total{code!~"[23].."}[$__rate_interval])) / sum by (api_service) (rate(usage_requests_total[$__rate_interval]))) and %s`, theirServices), "{{api_service}}"))))
	return b.Build()
}
