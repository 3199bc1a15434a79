package grafana

//lint:file-ignore SA1019 the v1 dashboard schema is what file provisioning loads on Grafana 11 and 12 (v2 needs feature flags)

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/piechart"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

const theModel = `model=~"$model"`

// models is spend, tokens and LiteLLM's view by model.
func models() (dashboard.Dashboard, error) {
	l := &layout{}
	tokensByDirection := fmt.Sprintf(`sum by (direction) (increase(usage_llm_tokens_total{%s}[$__range]))`, theModel)
	b := board("usage-models", "Usage models and cost",
		"Spend and tokens by model and direction, cost per 1,000 tokens, the same traffic on another model, unpriced calls, and LiteLLM's failures, latency, cache, team and key spend and budgets.").
		WithVariable(labelVariable("model", "model", "usage_llm_tokens_total", true)).
		WithRow(l.row("Spend")).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Spend by model").Unit("currencyUSD").
			Description("Dollars per hour by model.").
			WithTarget(query("A", fmt.Sprintf(`sum by (model) (rate(usage_cost_dollars_total{%s, model!=""}[$__rate_interval])) * 3600`, theModel), "{{model}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(30).
			Legend(legendTable("mean", "lastNotNull")))).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Tokens by model and direction").Unit("short").
			Description("Tokens per hour in disjoint billing buckets: input, output, cache reads and writes, reasoning.").
			WithTarget(query("A", fmt.Sprintf(`sum by (model, direction) (rate(usage_llm_tokens_total{%s}[$__rate_interval])) * 3600`, theModel), "{{model}} {{direction}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(30))).
		WithPanel(place(l, 8, 8, piechart.NewPanelBuilder().Title("Tokens by direction").Unit("short").
			WithTarget(instant("A", tokensByDirection, "{{direction}}")).
			PieType(piechart.PieChartTypeDonut).ReduceOptions(reduce("lastNotNull")))).
		WithPanel(place(l, 8, 8, bargauge.NewPanelBuilder().Title("Cost per 1,000 tokens").Unit("currencyUSD").
			WithTarget(instant("A", fmt.Sprintf(`sum by (model) (increase(usage_cost_dollars_total{%s, model!=""}[$__range])) / sum by (model) (increase(usage_llm_tokens_total{%s}[$__range])) * 1000`, theModel, theModel), "{{model}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(thresholds("blue")))).
		WithPanel(place(l, 8, 8, table.NewPanelBuilder().Title("The same traffic on another model").
			Description("The selected models' tokens in the time range, by direction, priced at each model's prices (usage_price_dollars_per_token of the models in use): what switching would have cost. A model without a price for a direction (cache, reasoning) leaves it out.").
			WithTarget(tableQuery("A", fmt.Sprintf(`sort_desc(sum by (candidate) (%s * on (direction) group_right label_replace(label_replace(max by (model, token_type) (usage_price_dollars_per_token), "candidate", "$1", "model", "(.*)"), "direction", "$1", "token_type", "(.*)")))`, tokensByDirection))).
			WithTransformation(organize([]string{"Time"}, map[string]string{"candidate": "priced as", "Value": "cost"})).
			Unit("currencyUSD").
			SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("cost")}).
			Footer(footer()))).
		WithPanel(place(l, 12, 7, timeseries.NewPanelBuilder().Title("Unpriced calls").Unit("short").
			Description("Calls that could not be priced (their cost is unknown, not 0), by model and reason: unknown_model, no_tokens, no_model. 0 when every call was priced.").
			WithTarget(query("A", `sum by (model, reason) (increase(usage_exporter_unpriced_requests_total[$__rate_interval])) or vector(0)`, "{{model}} {{reason}}")))).
		WithPanel(place(l, 12, 7, timeseries.NewPanelBuilder().Title("Model calls and failures").Unit("reqps").
			WithTarget(query("A", fmt.Sprintf(`sum by (model) (rate(usage_llm_requests_total{%s}[$__rate_interval]))`, theModel), "{{model}}")).
			WithTarget(query("B", fmt.Sprintf(`sum by (model) (rate(usage_llm_requests_total{%s, status="failure"}[$__rate_interval])) or vector(0)`, theModel), "failures {{model}}")))).
		WithRow(l.row("LiteLLM")).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("LiteLLM latency p95 by model").Unit("s").
			WithTarget(query("A", fmt.Sprintf(`histogram_quantile(0.95, sum by (model, le) (rate(usage_llm_request_duration_seconds_bucket{%s}[$__rate_interval])))`, theModel), "{{model}}")))).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("LiteLLM response cache").Unit("percentunit").Min(0).Max(1).
			Description("Share of LiteLLM's cacheable requests answered from its cache.").
			WithTarget(query("A", `sum(rate(usage_llm_cache_requests_total{result="hit"}[$__rate_interval])) / sum(rate(usage_llm_cache_requests_total[$__rate_interval])) or vector(0)`, "hit ratio")))).
		WithPanel(place(l, 8, 8, bargauge.NewPanelBuilder().Title("Spend by team").Unit("currencyUSD").
			WithTarget(instant("A", `topk(10, sum by (team) (increase(usage_llm_team_cost_dollars_total[$__range])))`, "{{team}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(thresholds("blue")))).
		WithPanel(place(l, 8, 8, bargauge.NewPanelBuilder().Title("Spend by API key").Unit("currencyUSD").
			WithTarget(instant("A", `topk(10, sum by (api_key) (increase(usage_llm_api_key_cost_dollars_total[$__range])))`, "{{api_key}}")).
			DisplayMode(common.BarGaugeDisplayModeGradient).Orientation(common.VizOrientationHorizontal).
			ReduceOptions(reduce("lastNotNull")).Thresholds(thresholds("blue")))).
		WithPanel(place(l, 8, 8, table.NewPanelBuilder().Title("Budgets").
			Description("LiteLLM budgets of teams, orgs, API keys and users: remaining, maximum and hours to reset (absent when unlimited).").
			WithTarget(tableQuery("A", `max by (scope, name) (usage_llm_budget_remaining_dollars)`)).
			WithTarget(tableQuery("B", `max by (scope, name) (usage_llm_budget_max_dollars)`)).
			WithTarget(tableQuery("C", `max by (scope, name) (usage_llm_budget_reset_hours)`)).
			WithTransformation(merge).
			WithTransformation(organize([]string{"Time"}, map[string]string{"Value #A": "remaining", "Value #B": "max", "Value #C": "hours to reset"})).
			Unit("currencyUSD").
			OverrideByName("hours to reset", []dashboard.DynamicConfigValue{{Id: "unit", Value: "h"}}).
			Footer(footer())))
	return b.Build()
}
