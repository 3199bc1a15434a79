package grafana

//lint:file-ignore SA1019 the v1 dashboard schema is what file provisioning loads on Grafana 11 and 12 (v2 needs feature flags)

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// panelQuery is one query of a committed dashboard.
type panelQuery struct {
	Board, Panel, Ref, Expr string
	Instant                 bool
}

// committedQueries reads every panel query of grafana/dashboards.
func committedQueries(t *testing.T) []panelQuery {
	t.Helper()
	var out []panelQuery
	for _, b := range Boards() {
		data, err := os.ReadFile(filepath.Join("dashboards", b.File))
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					RefID   string `json:"refId"`
					Expr    string `json:"expr"`
					Instant bool   `json:"instant"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", b.File, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out = append(out, panelQuery{b.File, p.Title, tg.RefID, tg.Expr, tg.Instant})
			}
		}
	}
	if len(out) < 50 {
		t.Fatalf("only %d queries in the dashboards", len(out))
	}
	return out
}

// ruleExprs reads every expression of prometheus/rules, by rule name.
func ruleExprs(t *testing.T) map[string]string {
	t.Helper()
	files, _ := filepath.Glob("../prometheus/rules/*.yml")
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Rules []struct{ Record, Alert, Expr string }
			}
		}
		if err := yaml.Unmarshal(data, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, g := range rf.Groups {
			for j, r := range g.Rules {
				name := r.Record + r.Alert
				if _, dup := out[name]; dup { // several quantiles under one record name
					name += "#" + string(rune('a'+i)) + string(rune('a'+j))
				}
				out[name] = r.Expr
			}
		}
	}
	if len(out) < 30 {
		t.Fatalf("only %d rules read", len(out))
	}
	return out
}

// grafanaVars are the values the panels' variables take: All (".*") by
// default; the test of one real value passes its own.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "$__range", "10m", "$__interval", "15s",
	"${datasource}", "usage-prometheus",
)

// substitute gives the dashboard variables values: builtin ranges, then
// vars (name to value), then ".*" for any left.
func substitute(expr string, vars map[string]string) string {
	expr = grafanaVars.Replace(expr)
	for name, v := range vars {
		expr = strings.ReplaceAll(expr, "$"+name, v)
	}
	return regexp.MustCompile(`\$[a-z_]+`).ReplaceAllString(expr, ".*")
}

// metricNames lists the metric names an expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%v\n%s", err, expr)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" && !slices.Contains(names, vs.Name) {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// The committed JSON is what the code generates.
func TestCommittedDashboardsAreGenerated(t *testing.T) {
	for _, b := range Boards() {
		want, err := Generate(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("dashboards", b.File))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("grafana/dashboards/%s is not what grafana/*.go generates: run make dashboards", b.File)
		}
	}
}

// Every query parses and names metrics; every panel has a unit, an id of
// its own and a place in the grid; every query reads the ${datasource}.
func TestDashboardsAreWellFormed(t *testing.T) {
	for _, q := range committedQueries(t) {
		if len(metricNames(t, substitute(q.Expr, nil))) == 0 {
			t.Errorf("%s / %s %s: no metric in %s", q.Board, q.Panel, q.Ref, q.Expr)
		}
	}
	for _, expr := range ruleExprs(t) {
		metricNames(t, expr)
	}
	for _, b := range Boards() {
		data, _ := os.ReadFile(filepath.Join("dashboards", b.File))
		var d struct {
			UID    string `json:"uid"`
			Panels []struct {
				ID      int    `json:"id"`
				Type    string `json:"type"`
				Title   string `json:"title"`
				GridPos struct{ X, Y, W, H int }
				Field   struct {
					Defaults struct {
						Unit string `json:"unit"`
					} `json:"defaults"`
				} `json:"fieldConfig"`
				Targets []struct {
					RefID      string `json:"refId"`
					Datasource struct {
						UID string `json:"uid"`
					} `json:"datasource"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel %q id %d repeated or missing", b.File, p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("%s: panel %q at %+v", b.File, p.Title, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if p.Field.Defaults.Unit == "" {
				t.Errorf("%s: panel %q has no unit", b.File, p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q target %+v", b.File, p.Title, tg)
				}
				refs[tg.RefID] = true
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", b.File, p.Title)
			}
		}
	}
}

// docs/dashboards.md describes every panel: each title appears there.
func TestEveryPanelIsDescribed(t *testing.T) {
	doc, err := os.ReadFile("../docs/dashboards.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, q := range committedQueries(t) {
		if !seen[q.Panel] && !strings.Contains(string(doc), q.Panel) {
			t.Errorf("%s: panel %q is not in docs/dashboards.md", q.Board, q.Panel)
		}
		seen[q.Panel] = true
	}
}

// The committed JSON reads back through the SDK's strict parser (every
// field known, every panel and query of a known kind): what Grafana's
// schema would refuse fails here.
func TestDashboardsReadBackStrictly(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, b := range Boards() {
		data, err := os.ReadFile(filepath.Join("dashboards", b.File))
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard.Dashboard
		// The SDK returns a typed nil on success.
		if err := d.UnmarshalJSONStrict(data); err != nil && !reflect.ValueOf(err).IsNil() {
			t.Errorf("%s: %v", b.File, err)
		}
		if d.Uid == nil || len(d.Panels) < 8 {
			t.Errorf("%s: read back %v uid, %d panels", b.File, d.Uid, len(d.Panels))
		}
	}
}
