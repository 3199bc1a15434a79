package optimizer

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The table of recorded sums is the rule file's: each record sums its
// metric without the labels the table does not keep.
func TestRecordedSumsMatchTheRules(t *testing.T) {
	data, err := os.ReadFile("../prometheus/rules/usage-recording.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct{ Record, Expr string }
		}
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	exprOf := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			exprOf[r.Record] = strings.TrimSpace(r.Expr)
		}
	}
	// The exporter's labels of each counter (docs/metrics.md).
	labelsOf := map[string][]string{
		"usage_requests_total":                  {"api_service", "route", "method", "code"},
		"usage_request_duration_seconds_bucket": {"api_service", "route", "le"},
		"usage_request_duration_seconds_sum":    {"api_service", "route"},
		"usage_request_duration_seconds_count":  {"api_service", "route"},
		"usage_user_requests_total":             {"user", "tier", "api_service"},
	}
	if len(RecordedSums) != 5 {
		t.Errorf("%d recorded sums in the table", len(RecordedSums))
	}
	sumWithout := regexp.MustCompile(`^sum without \(([^)]*)\) \((\w+)\)$`)
	for _, r := range RecordedSums {
		m := sumWithout.FindStringSubmatch(exprOf[r.Record])
		if m == nil || m[2] != r.Metric {
			t.Errorf("%s: expr %q, want sum without (...) (%s)", r.Record, exprOf[r.Record], r.Metric)
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(labelsOf[r.Metric]), func(l string) bool {
			return slices.Contains(strings.Split(strings.ReplaceAll(m[1], " ", ""), ","), l)
		})
		if !slices.Equal(kept, r.Labels) {
			t.Errorf("%s keeps %v, the table says %v", r.Record, kept, r.Labels)
		}
		if without := strings.Split(strings.ReplaceAll(m[1], " ", ""), ","); !slices.Equal(without, r.Without) {
			t.Errorf("%s sums without %v, the table says %v", r.Record, without, r.Without)
		}
	}
}

func TestRewriteOnRecordedSums(t *testing.T) {
	rec := recorded{}
	for _, r := range RecordedSums[:2] {
		rec[r.Metric] = r
	}
	for _, c := range []struct{ selector, by, want string }{
		{"usage_requests_total", "api_service", "api_service_code:usage_requests_total:sum"},
		{`usage_requests_total{code!~"[23].."}`, "api_service", `api_service_code:usage_requests_total:sum{code!~"[23].."}`},
		{"usage_requests_total", "api_service, route", "usage_requests_total"},
		{`usage_requests_total{method="GET"}`, "api_service", `usage_requests_total{method="GET"}`},
		{"usage_request_duration_seconds_bucket", "api_service, le", "api_service_le:usage_request_duration_seconds_bucket:sum"},
		// Not in this snapshot's set: raw.
		{"usage_request_duration_seconds_sum", "api_service", "usage_request_duration_seconds_sum"},
		{"usage_cost_dollars_total", "api_service, model", "usage_cost_dollars_total"},
	} {
		if got := rec.rewrite(c.selector, c.by); got != c.want {
			t.Errorf("rewrite(%q, %q) = %q, want %q", c.selector, c.by, got, c.want)
		}
	}
}
