package grafana

//lint:file-ignore SA1019 the v1 dashboard schema is what file provisioning loads on Grafana 11 and 12 (v2 needs feature flags)

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// ratio is each labelled user's use / allowance this period (the recording
// rule user_tier_resource:usage_quota_used:ratio, written out so that the
// dashboard does not wait for a rule evaluation).
var ratio = fmt.Sprintf(`max without (instance) (usage_quota_used{%s, tier=~"$tier"}) / on (tier, resource) group_left max by (tier, resource) (usage_quota_limit)`, notUsers)

// forecast is each user's use at the end of the period at the last 6
// hours' rate, as a share of the allowance.
var forecast = fmt.Sprintf(`max without (instance) (predict_linear(usage_quota_used{%s, tier=~"$tier"}[6h], scalar(max(usage_quota_period_end_timestamp_seconds)) - time())) / on (tier, resource) group_left max by (tier, resource) (usage_quota_limit)`, notUsers)

// quotas is use against allowances, per tier and user, who will run out,
// and the optimizer's plan findings.
func quotas() (dashboard.Dashboard, error) {
	l := &layout{}
	b := board("usage-quotas", "Usage quotas and plans",
		"Use against each tier's allowance this billing period, per tier and per user; who will run out before the period ends at the current rate; the optimizer's upgrade candidates.").
		WithVariable(labelVariable("tier", "tier", "usage_quota_used", true)).
		WithRow(l.row("Tiers")).
		WithPanel(place(l, 6, 8, stat.NewPanelBuilder().Title("Period ends").Unit("dateTimeFromNow").
			WithTarget(instant("A", `max(usage_quota_period_end_timestamp_seconds) * 1000`, "")).
			ReduceOptions(reduce("lastNotNull")).GraphMode(common.BigValueGraphModeNone).Thresholds(thresholds("blue")))).
		WithPanel(place(l, 9, 8, bargauge.NewPanelBuilder().Title("Average use by tier").Unit("percentunit").Min(0).Max(1).
			WithTarget(instant("A", fmt.Sprintf(`avg by (tier, resource) (%s)`, ratio), "{{tier}} {{resource}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(quotaThresholds()))).
		WithPanel(place(l, 9, 8, table.NewPanelBuilder().Title("Users by tier").
			Description("Labelled users with quota use this period, those past 80%, and the tier's allowance.").
			WithTarget(tableQuery("A", fmt.Sprintf(`count by (tier, resource) (%s)`, ratio))).
			WithTarget(tableQuery("B", fmt.Sprintf(`count by (tier, resource) (%s >= 0.8) or count by (tier, resource) (%s) * 0`, ratio, ratio))).
			WithTarget(tableQuery("C", `max by (tier, resource) (usage_quota_limit{tier=~"$tier"})`)).
			WithTransformation(merge).
			WithTransformation(organize([]string{"Time"}, map[string]string{"Value #A": "users", "Value #B": "past 80%", "Value #C": "allowance"})).
			Unit("short").Footer(footer()))).
		WithPanel(place(l, 24, 8, timeseries.NewPanelBuilder().Title("Use over the period by tier").Unit("short").
			Description("Calls and tokens used this period, summed over each tier's labelled users (users beyond users.max_users are in __other__, shown apart).").
			WithTarget(query("A", `sum by (tier, resource) (max without (instance) (usage_quota_used{tier=~"$tier"}))`, "{{tier}} {{resource}}")))).
		WithRow(l.row("Users")).
		WithPanel(place(l, 12, 10, table.NewPanelBuilder().Title("Users nearest their allowance").
			WithTarget(tableQuery("A", fmt.Sprintf(`topk(25, %s)`, ratio))).
			WithTransformation(organize([]string{"Time", "job"}, map[string]string{"Value": "used"})).
			Unit("percentunit").Thresholds(quotaThresholds()).
			OverrideByName("used", []dashboard.DynamicConfigValue{{Id: "custom.cellOptions", Value: map[string]any{"type": "gauge", "mode": "gradient"}}}).
			SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("used").Desc(true)}).
			Footer(footer()))).
		WithPanel(place(l, 12, 10, table.NewPanelBuilder().Title("Will run out before the period ends").
			Description("Users whose use at the last 6 hours' rate reaches the allowance by the end of the period (the alert UsageQuotaForecastExhausted), with the share they will have used.").
			WithTarget(tableQuery("A", fmt.Sprintf(`sort_desc(%s > 1)`, forecast))).
			WithTransformation(organize([]string{"Time", "job"}, map[string]string{"Value": "at period end"})).
			Unit("percentunit").NoValue("nobody at the current rate").
			Footer(footer()))).
		WithRow(l.row("Plans")).
		WithPanel(place(l, 24, 8, table.NewPanelBuilder().Title("Plan findings of the optimizer").
			Description("plan_upgrade (users whose overage would pay for the next tier: revenue), plan_optimization and billing_model, from the optimizer's series.").
			WithTarget(tableQuery("A", `max by (id, type, priority, current, recommended, effort) (usage_recommendation_info{type=~"plan_upgrade|plan_optimization|billing_model"}) * on (id) group_right (type, priority, current, recommended, effort) max by (id) (usage_recommendation_savings_dollars)`)).
			WithTransformation(organize([]string{"Time"}, map[string]string{"Value": "per month"})).
			Unit("currencyUSD").NoValue("no plan finding in the optimizer's window").
			OverrideByName("id", []dashboard.DynamicConfigValue{{Id: "unit", Value: "string"}}).
			Footer(footer())))
	return b.Build()
}
