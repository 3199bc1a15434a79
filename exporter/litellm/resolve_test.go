package litellm

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

func parseFile(t *testing.T, path string, opt Options) *Snapshot {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Parse(f, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// firstScrape is everything a snapshot counts, resolved.
func firstScrape(s *Snapshot) Amounts {
	return NewProcesses(0).Apply("t", "e", s, t0).Usage.Resolve()
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

// byModel sums spend by model, and tokens and requests by model and
// direction or status, as "model/part value" lines.
func byModel(a Amounts) string {
	sums := map[string]float64{}
	for k, v := range a.Spend {
		sums[k.Model+"/spend"] += v
	}
	for k, v := range a.Tokens {
		sums[k.Model+"/"+k.Direction] += v
	}
	for k, v := range a.Requests {
		sums[k.Model+"/"+k.Status] += v
	}
	var lines []string
	for k, v := range sums {
		lines = append(lines, fmt.Sprintf("%s %.9g", k, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// LiteLLM 1.83 puts no requested_model on spend and no model on requests:
// each family's model is resolved from the token series, which carry both,
// so cost, tokens and requests land under one name.
func TestResolveModelLabelPerFamily(t *testing.T) {
	const path = "testdata/captures/v1.83-scenario.prom"
	got := byModel(firstScrape(parseFile(t, path, Options{})))
	// cust_1's 0.05 on gpt-4o-2024-08-06 is shared by the groups' tokens
	// (gpt-4o 14,000, smart 6,000); the anonymous 0.02 is gpt-4o's alone.
	want := strings.Join([]string{
		"embed/input 40",
		"embed/spend 1e-05",
		"embed/success 5",
		"gpt-4o/cache_read 8000",
		"gpt-4o/failure 2",
		"gpt-4o/input 9000",
		"gpt-4o/output 3000",
		"gpt-4o/spend 0.055",
		"gpt-4o/success 42",
		"smart/input 4000",
		"smart/output 1500",
		"smart/reasoning 500",
		"smart/spend 0.015",
		"smart/success 10",
	}, "\n")
	if got != want {
		t.Errorf("by requested_model:\n%s\nwant\n%s", got, want)
	}
	got = byModel(firstScrape(parseFile(t, path, Options{ModelLabel: "model"})))
	want = strings.Join([]string{
		"gemini-embedding-2/input 40",
		"gemini-embedding-2/spend 1e-05",
		"gemini-embedding-2/success 5",
		"gpt-4o-2024-08-06/cache_read 8000",
		"gpt-4o-2024-08-06/failure 2",
		"gpt-4o-2024-08-06/input 13000",
		"gpt-4o-2024-08-06/output 4500",
		"gpt-4o-2024-08-06/reasoning 500",
		"gpt-4o-2024-08-06/spend 0.07",
		"gpt-4o-2024-08-06/success 52",
	}, "\n")
	if got != want {
		t.Errorf("by model:\n%s\nwant\n%s", got, want)
	}
}

// Within a scrape's increments, the weights are those of the increments:
// a later scrape where only smart's tokens grew puts all new spend on smart.
func TestResolveWeighsTheIncrements(t *testing.T) {
	text := func(gpt4o, smart, spend float64) string {
		return fmt.Sprintf(`# TYPE process_start_time_seconds gauge
process_start_time_seconds 100
# TYPE litellm_spend_metric_total counter
litellm_spend_metric_total{end_user="u",model="p"} %v
# TYPE litellm_input_tokens_metric_total counter
litellm_input_tokens_metric_total{end_user="u",model="p",requested_model="gpt-4o"} %v
litellm_input_tokens_metric_total{end_user="u",model="p",requested_model="smart"} %v
`, spend, gpt4o, smart)
	}
	p := NewProcesses(0)
	parse := func(s string) *Snapshot {
		snap, err := Parse(strings.NewReader(s), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	first := p.Apply("t", "e", parse(text(300, 100, 4)), t0).Usage.Resolve()
	if !near(first.Spend[SpendKey{Model: "gpt-4o", User: "u"}], 3) || !near(first.Spend[SpendKey{Model: "smart", User: "u"}], 1) {
		t.Errorf("first scrape: %v", first.Spend)
	}
	next := p.Apply("t", "e", parse(text(300, 150, 5)), t0.Add(time.Minute)).Usage.Resolve()
	if len(next.Spend) != 1 || !near(next.Spend[SpendKey{Model: "smart", User: "u"}], 1) {
		t.Errorf("second scrape: %v", next.Spend)
	}
}

// LiteLLM's token totals include their details; the buckets are disjoint.
func TestResolveTokenBuckets(t *testing.T) {
	s, err := Parse(strings.NewReader(`# TYPE litellm_input_tokens_metric_total counter
litellm_input_tokens_metric_total{end_user="u",model="claude",requested_model="claude"} 1000
# TYPE litellm_input_cached_tokens_metric_total counter
litellm_input_cached_tokens_metric_total{end_user="u",model="claude",requested_model="claude"} 600
# TYPE litellm_input_cache_creation_tokens_metric_total counter
litellm_input_cache_creation_tokens_metric_total{end_user="u",model="claude",requested_model="claude"} 100
# TYPE litellm_output_tokens_metric_total counter
litellm_output_tokens_metric_total{end_user="u",model="claude",requested_model="claude"} 500
# TYPE litellm_output_reasoning_tokens_metric_total counter
litellm_output_reasoning_tokens_metric_total{end_user="u",model="claude",requested_model="claude"} 200
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := "claude/cache_read 600\nclaude/cache_write 100\nclaude/input 300\nclaude/output 300\nclaude/reasoning 200"
	if got := byModel(firstScrape(s)); got != want {
		t.Errorf("buckets:\n%s\nwant\n%s", got, want)
	}
}

// The real lines parse; the route LiteLLM's own scrapes go to is not a
// model call, and any other route is.
func TestCapturedLines(t *testing.T) {
	spend := parseFile(t, "testdata/captures/v1.83.13-spend-line.prom", Options{})
	if got := byModel(firstScrape(spend)); got != "gemini-embedding-2/spend 1e-05" {
		t.Errorf("1.83.13 spend line: %s", got)
	}
	route := parseFile(t, "testdata/captures/v1.71-route-line.prom", Options{})
	if got := byModel(firstScrape(route)); got != "openai/gpt-4sso/failure 1" {
		t.Errorf("1.71 request line: %s", got)
	}
	failed := parseFile(t, "testdata/captures/failed-requests-route-lines.prom", Options{})
	if n := len(failed.Series); n != 3 {
		t.Errorf("failed-request lines: %d series", n)
	}
	metricsHits := strings.ReplaceAll(`# TYPE litellm_proxy_total_requests_metric_total counter
litellm_proxy_total_requests_metric_total{requested_model="None",route="ROUTE",status_code="401"} 17
# TYPE litellm_proxy_failed_requests_metric_total counter
litellm_proxy_failed_requests_metric_total{requested_model="None",route="ROUTE",exception_status="401"} 17
`, "ROUTE", "/metrics")
	s, err := Parse(strings.NewReader(metricsHits), Options{})
	if err != nil || len(s.Series) != 0 {
		t.Errorf("/metrics hits counted: %v %v", s, err)
	}
	custom, err := Parse(strings.NewReader(strings.ReplaceAll(metricsHits, "/metrics", "/prom")),
		Options{IgnoreRoutes: []string{"/prom"}})
	if err != nil || len(custom.Series) != 0 {
		t.Errorf("a scraped path other than /metrics counted: %v %v", custom, err)
	}
}
