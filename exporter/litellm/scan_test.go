package litellm

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// sameSnapshot compares two snapshots; NaN equals NaN.
func sameSnapshot(a, b *Snapshot) bool {
	norm := func(s *Snapshot) string {
		c := *s
		c.Budgets = nil
		series := make([]string, len(c.Series))
		for i, x := range c.Series {
			series[i] = fmt.Sprintf("%x %d %+v %v", x.ID, x.Kind, c.Labels(x), x.Value)
		}
		return fmt.Sprintf("%v %v %v %v %v %v %v", c.StartTime, series, c.pairs, latencyString(c.Latency),
			c.CacheHits, c.CacheMiss, c.Simplified)
	}
	if norm(a) != norm(b) || len(a.Budgets) != len(b.Budgets) {
		return false
	}
	for i := range a.Budgets {
		x, y := a.Budgets[i], b.Budgets[i]
		if x.Scope != y.Scope || x.Name != y.Name || !sameFloat(x.Remaining, y.Remaining) || !sameFloat(x.Max, y.Max) ||
			!sameFloat(x.HoursToReset, y.HoursToReset) {
			return false
		}
	}
	return true
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func latencyString(m map[string]*Histogram) string {
	out := map[string]string{}
	for k, h := range m {
		out[k] = fmt.Sprint(h.Buckets, h.Count, h.Sum)
	}
	return fmt.Sprint(out)
}

func compareWithExpfmt(t *testing.T, data []byte, opt Options) {
	t.Helper()
	ref, refErr := parse(bytes.NewReader(data), opt, true)
	got, err := parse(bytes.NewReader(data), opt, false)
	if refErr != nil {
		return // the scanner may be more lenient than expfmt, never stricter
	}
	if err != nil {
		t.Fatalf("expfmt accepts, the scanner rejects: %v\n%q", err, data)
	}
	if !sameSnapshot(ref, got) {
		t.Fatalf("scanner and expfmt disagree on %q\nexpfmt  %+v\nscanner %+v", data, ref, got)
	}
}

func TestScannerMatchesExpfmt(t *testing.T) {
	for _, opt := range []Options{{}, {ModelLabel: "model", UserLabel: "user"}, {UserLabel: "team_alias"}} {
		compareWithExpfmt(t, readFixture(t), opt)
		compareWithExpfmt(t, exposition(3, 7), opt)
	}
	if !reflect.DeepEqual(parseFixture(t).Series, mustParse(t, readFixture(t), true).Series) {
		t.Fatal("fixture series differ")
	}
}

func mustParse(t *testing.T, data []byte, reference bool) *Snapshot {
	t.Helper()
	s, err := parse(bytes.NewReader(data), Options{}, reference)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// escapeLabel writes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// FuzzScannerMatchesExpfmt renders a well-formed exposition of the bulk
// families from fuzzed label values and numbers, and checks that the
// scanner reads it exactly as expfmt does.
func FuzzScannerMatchesExpfmt(f *testing.F) {
	f.Add("gpt-4o", "cust_1042", "support-bots", "search-prod", "200", 0.6282924000000005, uint16(7), 12.5, "0.5")
	f.Add("claude \"3\"", "a\nb\\c", "None", "", "429", 1e-9, uint16(0), 0.0, "+Inf")
	f.Add("ünïcode", "用户", "t", "k", "5xx", 3e12, uint16(65535), 1e300, "1e-3")
	f.Fuzz(func(t *testing.T, model, user, team, key, status string, value float64, count uint16, sum float64, le string) {
		if math.IsNaN(value) || math.IsInf(value, 0) || value < 0 || math.IsNaN(sum) || math.IsInf(sum, 0) {
			return // counters are finite and non-negative
		}
		labels := fmt.Sprintf(`api_key_alias="%s",end_user="%s",requested_model="%s",team_alias="%s"`,
			escapeLabel(key), escapeLabel(user), escapeLabel(model), escapeLabel(team))
		var b strings.Builder
		for _, fam := range []string{famSpend, famInputTokens, famOutputTokens} {
			fmt.Fprintf(&b, "# HELP %s help\n# TYPE %s counter\n%s{%s} %v\n", fam, fam, fam, labels, value)
		}
		fmt.Fprintf(&b, "# TYPE %s counter\n%s{%s,status_code=\"%s\"} %v\n", famProxyRequests, famProxyRequests, labels, escapeLabel(status), value)
		fmt.Fprintf(&b, "# TYPE %s counter\n%s{%s} %v\n", famProxyFailed, famProxyFailed, labels, value)
		fmt.Fprintf(&b, "# TYPE %s histogram\n", famLatency)
		fmt.Fprintf(&b, "%s_bucket{%s,le=\"%s\"} %d\n", famLatency, labels, escapeLabel(le), count/2)
		fmt.Fprintf(&b, "%s_bucket{%s,le=\"+Inf\"} %d\n", famLatency, labels, count)
		fmt.Fprintf(&b, "%s_sum{%s} %v\n%s_count{%s} %d\n", famLatency, labels, sum, famLatency, labels, count)
		compareWithExpfmt(t, []byte(b.String()), Options{})
	})
}

// FuzzParse: any bytes give a snapshot or an error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add(string(exposition(1, 2)))
	f.Add("# TYPE litellm_spend_metric_total counter\nlitellm_spend_metric_total{\"0\"=\"\"}0\n")
	f.Add("# TYPE litellm_request_total_latency_metric histogrAm\nlitellm_request_total_latency_metric{}00\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(strings.NewReader(text), Options{})
		if (s == nil) == (err == nil) {
			t.Fatalf("Parse returned %v and %v", s, err)
		}
	})
}
