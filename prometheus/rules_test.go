// Package prometheus holds the Prometheus configuration, the recording and
// alerting rules and their tests; this file checks them with the real
// promtool and holds every alert to its runbook entry and its unit tests.
package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// RunbookURL is where every alert's runbook_url points, followed by
// "#" and the alert's name in lower case (a heading of docs/runbook.md).
const RunbookURL = "https://github.com/usage-exporter/usage-exporter/blob/main/docs/runbook.md"

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type testFile struct {
	Tests []struct {
		PromQL []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
		Alerts []struct {
			Name   string `yaml:"alertname"`
			Alerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not installed (make deps installs the prometheus package): %v", err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtoolCheck(t *testing.T) {
	rules, _ := filepath.Glob("rules/*.yml")
	if len(rules) < 2 {
		t.Fatalf("rule files: %v", rules)
	}
	promtool(t, append([]string{"check", "rules"}, rules...)...)
	promtool(t, "check", "config", "prometheus.yml")
}

func TestPromtoolUnitTests(t *testing.T) {
	tests, _ := filepath.Glob("tests/*.yml")
	if len(tests) < 2 {
		t.Fatalf("rule tests: %v", tests)
	}
	promtool(t, append([]string{"test", "rules"}, tests...)...)
}

func load(t *testing.T, pattern string, into func(data []byte) error) {
	t.Helper()
	files, _ := filepath.Glob(pattern)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := into(data); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// Every alert has a severity, a summary, a description and a runbook entry,
// and is tested firing and not firing; every recording rule's value is
// tested.
func TestEveryRuleIsTestedAndDocumented(t *testing.T) {
	var rules []ruleFile
	load(t, "rules/*.yml", func(data []byte) error {
		var f ruleFile
		err := yaml.Unmarshal(data, &f)
		rules = append(rules, f)
		return err
	})
	var tests []testFile
	load(t, "tests/*.yml", func(data []byte) error {
		var f testFile
		err := yaml.Unmarshal(data, &f)
		tests = append(tests, f)
		return err
	})
	runbook, err := os.ReadFile("../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	firing, silent := map[string]bool{}, map[string]bool{}
	var exprs []string
	for _, f := range tests {
		for _, tc := range f.Tests {
			for _, a := range tc.Alerts {
				if len(a.Alerts) > 0 {
					firing[a.Name] = true
				} else {
					silent[a.Name] = true
				}
			}
			for _, p := range tc.PromQL {
				exprs = append(exprs, p.Expr)
			}
		}
	}
	var alerts, records int
	for _, f := range rules {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records++
					name := regexp.MustCompile(`\b` + regexp.QuoteMeta(r.Record) + `\b`)
					if !slices.ContainsFunc(exprs, name.MatchString) {
						t.Errorf("recording rule %s: no promql_expr_test reads it", r.Record)
					}
					continue
				}
				alerts++
				if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
					t.Errorf("%s: severity %q", r.Alert, s)
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: summary or description missing", r.Alert)
				}
				if want := RunbookURL + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
					t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
				}
				if !strings.Contains(string(runbook), "\n### "+r.Alert+"\n") {
					t.Errorf("%s: no section in docs/runbook.md", r.Alert)
				}
				if !firing[r.Alert] || !silent[r.Alert] {
					t.Errorf("%s: tested firing %v, not firing %v", r.Alert, firing[r.Alert], silent[r.Alert])
				}
			}
		}
	}
	if alerts < 15 || records < 15 {
		t.Errorf("%d alerts, %d recording rules read", alerts, records)
	}
}

// alertmanager.yml routes every severity the rules use to a receiver it
// defines, and its inhibitions name alerts that exist. (amtool is not in
// the Debian prometheus package; this checks what the rules rely on.)
func TestAlertmanagerExampleRoutesEverySeverity(t *testing.T) {
	data, err := os.ReadFile("alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	var am struct {
		Route struct {
			Receiver string `yaml:"receiver"`
			Routes   []struct {
				Matchers []string `yaml:"matchers"`
				Receiver string   `yaml:"receiver"`
			} `yaml:"routes"`
		} `yaml:"route"`
		Inhibit []struct {
			Source []string `yaml:"source_matchers"`
			Target []string `yaml:"target_matchers"`
		} `yaml:"inhibit_rules"`
		Receivers []struct {
			Name string `yaml:"name"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(data, &am); err != nil {
		t.Fatal(err)
	}
	receivers := map[string]bool{}
	for _, r := range am.Receivers {
		receivers[r.Name] = true
	}
	if !receivers[am.Route.Receiver] {
		t.Errorf("default receiver %q undefined", am.Route.Receiver)
	}
	routed := map[string]bool{}
	for _, r := range am.Route.Routes {
		if !receivers[r.Receiver] {
			t.Errorf("route to undefined receiver %q", r.Receiver)
		}
		for _, m := range r.Matchers {
			if v, ok := strings.CutPrefix(m, `severity="`); ok {
				routed[strings.TrimSuffix(v, `"`)] = true
			}
		}
	}
	alerts := map[string]bool{}
	load(t, "rules/*.yml", func(data []byte) error {
		var f ruleFile
		err := yaml.Unmarshal(data, &f)
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					alerts[r.Alert] = true
					if !routed[r.Labels["severity"]] {
						t.Errorf("%s: severity %q has no route", r.Alert, r.Labels["severity"])
					}
				}
			}
		}
		return err
	})
	name := regexp.MustCompile(`alertname=~?"([^"]+)"`)
	for _, in := range am.Inhibit {
		for _, m := range append(in.Source, in.Target...) {
			if sm := name.FindStringSubmatch(m); sm != nil {
				for _, a := range strings.Split(sm[1], "|") {
					if !alerts[a] {
						t.Errorf("inhibit rule names %s, which no rule defines", a)
					}
				}
			}
		}
	}
}
