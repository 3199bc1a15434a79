// Package grafana builds the project's Grafana dashboards as code, with the
// Grafana Foundation SDK. `go generate ./grafana/...` (make dashboards)
// writes them to grafana/dashboards/*.json, which are committed and
// provisioned by grafana/provisioning; a test fails when the committed JSON
// is not what this code generates.
//
// Every panel reads the series of docs/metrics.md and docs/optimizer.md
// through the ${datasource} variable (the provisioned Prometheus has a fixed
// uid), with $__rate_interval for rates and $__range for totals over the
// time picker's range.
package grafana

//lint:file-ignore SA1019 the v1 dashboard schema is what file provisioning loads on Grafana 11 and 12 (v2 needs feature flags)

//go:generate go run ./gen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// DatasourceUID is the uid of the Prometheus data source that
// grafana/provisioning/datasources provisions.
const DatasourceUID = "usage-prometheus"

// Board is a dashboard and the file it is written to.
type Board struct {
	File  string
	Build func() (dashboard.Dashboard, error)
}

// Boards are the dashboards, in the order of the folder.
func Boards() []Board {
	return []Board{
		{"usage-overview.json", overview},
		{"usage-user.json", user},
		{"usage-models.json", models},
		{"usage-quotas.json", quotas},
		{"usage-health.json", health},
	}
}

// Generate renders a board's JSON as it is committed.
func Generate(b Board) ([]byte, error) {
	d, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.File, err)
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Write writes every board into dir.
func Write(dir string) error {
	for _, b := range Boards() {
		data, err := Generate(b)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, b.File), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

var datasource = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}

// board starts a dashboard with the project's defaults: last 7 days, a
// refresh every minute, UTC (the optimizer's hours are UTC), the data source
// variable first, and links to the other dashboards.
func board(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"usage-exporter"}).
		Editable().
		Time("now-7d", "now").
		Timezone("utc").
		Refresh("1m").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("Usage dashboards").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"usage-exporter"}).AsDropdown(true).IncludeVars(true).KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus"))
}

// labelVariable is a variable of the values of label in metric, with All
// (".*", so that queries match with =~) and several values.
func labelVariable(name, label, metric string, all bool) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", metric, label)
	v := dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{Map: map[string]any{"query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1}}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if all {
		v = v.IncludeAll(true).AllValue(".*").Multi(true).Current(dashboard.VariableOption{
			Text: dashboard.StringOrArrayOfString{String: ptr("All")}, Value: dashboard.StringOrArrayOfString{String: ptr("$__all")}})
	}
	return v
}

// query is a range query; instant makes it an instant one (tables, pies,
// bar gauges that show one value per series).
func query(ref, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(datasource).RefId(ref).Expr(expr).LegendFormat(legend).Range()
}

func instant(ref, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(datasource).RefId(ref).Expr(expr).LegendFormat(legend).Instant()
}

func tableQuery(ref, expr string) *prometheus.DataqueryBuilder {
	return instant(ref, expr, "__auto").Format(prometheus.PromQueryFormatTable)
}

// layout places panels left to right, rows of 24 columns.
type layout struct {
	x, y, rowHeight uint32
	id              uint32
}

func (l *layout) next(w, h uint32) (uint32, dashboard.GridPos) {
	if l.x+w > 24 {
		l.x, l.y, l.rowHeight = 0, l.y+l.rowHeight, 0
	}
	pos := dashboard.GridPos{X: l.x, Y: l.y, W: w, H: h}
	l.x += w
	l.rowHeight = max(l.rowHeight, h)
	l.id++
	return l.id, pos
}

// row closes the current line and returns a row header.
func (l *layout) row(title string) *dashboard.RowBuilder {
	if l.x > 0 {
		l.x, l.y, l.rowHeight = 0, l.y+l.rowHeight, 0
	}
	l.id++
	r := dashboard.NewRowBuilder(title).Id(l.id).GridPos(dashboard.GridPos{X: 0, Y: l.y, W: 24, H: 1})
	l.y++
	return r
}

// placeable is what every panel builder of the SDK has.
type placeable[T any] interface {
	cog.Builder[dashboard.Panel]
	Id(uint32) T
	GridPos(dashboard.GridPos) T
}

// place gives a panel its id and position.
func place[T placeable[T]](l *layout, w, h uint32, p T) T {
	id, pos := l.next(w, h)
	return p.Id(id).GridPos(pos)
}

// thresholds are absolute steps: the base colour, then value, colour pairs.
func thresholds(base string, steps ...any) *dashboard.ThresholdsConfigBuilder {
	ts := []dashboard.Threshold{{Color: base}}
	for i := 0; i+1 < len(steps); i += 2 {
		ts = append(ts, dashboard.Threshold{Value: ptr(steps[i].(float64)), Color: steps[i+1].(string)})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(ts)
}

// quotaThresholds colour quota use: green below 60%, yellow to 80%, red above.
func quotaThresholds() *dashboard.ThresholdsConfigBuilder {
	return thresholds("green", 0.6, "yellow", 0.8, "red")
}

// organize hides the labels a table does not need and renames the rest.
func organize(exclude []string, rename map[string]string) dashboard.DataTransformerConfig {
	ex := map[string]bool{}
	for _, e := range exclude {
		ex[e] = true
	}
	return dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{"excludeByName": ex, "renameByName": rename}}
}

// merge joins the instant tables of several queries on their labels.
var merge = dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}

func reduce(calcs ...string) *common.ReduceDataOptionsBuilder {
	return common.NewReduceDataOptionsBuilder().Calcs(calcs).Values(false)
}

func legendTable(calcs ...string) *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeTable).
		Placement(common.LegendPlacementBottom).ShowLegend(true).Calcs(calcs)
}

func footer() *common.TableFooterOptionsBuilder {
	return common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})
}
