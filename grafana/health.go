package grafana

//lint:file-ignore SA1019 the v1 dashboard schema is what file provisioning loads on Grafana 11 and 12 (v2 needs feature flags)

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// health is the exporter's and the optimizer's own state.
func health() (dashboard.Dashboard, error) {
	l := &layout{}
	up := func(title, expr, description string) *stat.PanelBuilder {
		return place(l, 4, 4, stat.NewPanelBuilder().Title(title).Description(description).Unit("short").
			WithTarget(instant("A", expr, "{{instance}}")).
			ReduceOptions(reduce("lastNotNull")).ColorMode(common.BigValueColorModeBackground).
			GraphMode(common.BigValueGraphModeNone).
			Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: map[string]dashboard.ValueMappingResult{
				"0": {Text: ptr("down"), Color: ptr("red")}, "1": {Text: ptr("up"), Color: ptr("green")}}}}}).
			Thresholds(thresholds("red", 1.0, "green")))
	}
	age := func(title, expr, description string, warn float64) *stat.PanelBuilder {
		return place(l, 4, 4, stat.NewPanelBuilder().Title(title).Description(description).Unit("s").
			WithTarget(instant("A", expr, "{{instance}}")).
			ReduceOptions(reduce("lastNotNull")).ColorMode(common.BigValueColorModeValue).
			GraphMode(common.BigValueGraphModeNone).Thresholds(thresholds("green", warn, "red")))
	}
	b := board("usage-health", "Usage exporter and optimizer health",
		"Lines read and rejected, lag, rotations, folded series, LiteLLM and Redis, checkpoints, and the optimizer's runs.").
		WithRow(l.row("Status")).
		WithPanel(up("Exporter", `up{job="usage-exporter"}`, "Prometheus' scrape of the exporter.")).
		WithPanel(up("LiteLLM", `min by (endpoint) (usage_exporter_litellm_up)`, "The exporter's last scrape of each LiteLLM endpoint.")).
		WithPanel(up("Redis", `min(usage_exporter_redis_up)`, "The shared ledger's Redis (only with Redis).")).
		WithPanel(up("Optimizer source", `min(usage_optimizer_source_up)`, "The optimizer's last query of Prometheus or the exporter.")).
		WithPanel(age("Checkpoint age", `time() - max by (instance) (usage_exporter_checkpoint_last_success_timestamp_seconds)`, "Since the state file was last written or found current (alert past 300 s).", 300)).
		WithPanel(age("Optimizer report age", `max by (instance) (usage_optimizer_result_age_seconds)`, "Age of the report behind usage_recommendation_* (alert past an hour).", 3600)).
		WithRow(l.row("Logs")).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Lines read").Unit("short").
			Description("Lines per second by source and result: parsed, invalid, filtered.").
			WithTarget(query("A", `sum by (source, result) (rate(usage_exporter_log_lines_total[$__rate_interval]))`, "{{source}} {{result}}")))).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Invalid lines by reason").Unit("short").
			Description("Rejected lines per second by reason (syntax, missing, value, time, encoding, too_long); 0 when none.").
			WithTarget(query("A", `sum by (source, reason) (rate(usage_exporter_log_line_errors_total[$__rate_interval])) or vector(0)`, "{{source}} {{reason}}")))).
		WithPanel(place(l, 8, 8, timeseries.NewPanelBuilder().Title("Unread bytes").Unit("bytes").
			Description("How far behind the exporter is, per source.").
			WithTarget(query("A", `sum by (source) (usage_exporter_log_unread_bytes)`, "{{source}}")))).
		WithPanel(place(l, 8, 8, timeseries.NewPanelBuilder().Title("Newest line's age").Unit("s").
			Description("Now minus the time of the newest parsed line, per source: grows when the gateway is quiet or the exporter stalls.").
			WithTarget(query("A", `time() - max by (source) (usage_exporter_log_last_timestamp_seconds)`, "{{source}}")))).
		WithPanel(place(l, 8, 8, timeseries.NewPanelBuilder().Title("Rotations and folded series").Unit("short").
			Description("Rotations seen, and requests folded into __other__ by reason (user_cap, route_cap, model_cap), per interval; 0 when none.").
			WithTarget(query("A", `sum by (kind) (increase(usage_exporter_log_rotations_total[$__rate_interval])) or vector(0)`, "rotation {{kind}}")).
			WithTarget(query("B", `sum by (reason) (increase(usage_exporter_series_overflow_total[$__rate_interval])) or vector(0)`, "folded {{reason}}")))).
		WithRow(l.row("LiteLLM, ledger, checkpoints")).
		WithPanel(place(l, 8, 8, timeseries.NewPanelBuilder().Title("LiteLLM scrapes").Unit("s").
			WithTarget(query("A", `max by (endpoint) (usage_exporter_litellm_scrape_duration_seconds)`, "{{endpoint}}")).
			WithTarget(query("B", `sum(increase(usage_exporter_litellm_restarts_total[$__rate_interval])) or vector(0)`, "processes seen restarting")).
			OverrideByName("processes seen restarting", []dashboard.DynamicConfigValue{{Id: "unit", Value: "short"}, {Id: "custom.axisPlacement", Value: "right"}}))).
		WithPanel(place(l, 8, 8, timeseries.NewPanelBuilder().Title("Ledger").Unit("short").
			Description("Entries counted and not yet committed to Redis, and commits per second (with Redis).").
			WithTarget(query("A", `sum by (instance) (usage_exporter_ledger_pending_entries)`, "pending {{instance}}")).
			WithTarget(query("B", `sum by (instance) (rate(usage_exporter_ledger_commits_total[$__rate_interval]))`, "commits/s {{instance}}")))).
		WithPanel(place(l, 8, 8, timeseries.NewPanelBuilder().Title("State file").Unit("bytes").
			WithTarget(query("A", `max by (instance) (usage_exporter_checkpoint_size_bytes)`, "size {{instance}}")).
			WithTarget(query("B", `sum by (instance) (increase(usage_exporter_checkpoint_errors_total[$__rate_interval]))`, "failed writes {{instance}}")).
			OverrideByName("failed writes {{instance}}", []dashboard.DynamicConfigValue{{Id: "unit", Value: "short"}}))).
		WithRow(l.row("Optimizer")).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Optimizer runs").Unit("short").
			WithTarget(query("A", `sum by (result) (increase(usage_optimizer_runs_total[$__rate_interval]))`, "{{result}}")))).
		WithPanel(place(l, 12, 8, timeseries.NewPanelBuilder().Title("Optimizer analysis time").Unit("s").
			WithTarget(query("A", `max by (instance) (usage_optimizer_run_duration_seconds)`, "{{instance}}"))))
	return b.Build()
}
