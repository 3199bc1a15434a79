package litellm

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixture is a LiteLLM v1.101 exposition (see testdata/README.md).
const fixture = "testdata/litellm-v1.101.prom"

func readFixture(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func parseFixture(t testing.TB) *Snapshot {
	t.Helper()
	s, err := Parse(bytes.NewReader(readFixture(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The totals of the fixture's README, by requested_model.
var fixtureTotals = map[string]struct {
	spend            float64
	input, output    float64
	requests, failed float64
}{
	"claude-3-5-sonnet": {16.176486, 3017787, 474875, 743, 1},
	"claude-3-haiku":    {0.371757, 1146930, 68020, 540, 0},
	"gpt-4o":            {13.507943, 2846165, 639253, 2162, 12},
	"gpt-4o-mini":       {2.193296, 9825653, 1433236, 7975, 9},
	"llama-3-70b":       {7.686497, 1733937, 883304, 2330, 18},
}

func byModelLabel(l Labels) string { return l.Model }

func TestParseFixture(t *testing.T) {
	s := parseFixture(t)
	spend, in, out := s.Totals(Spend, byModelLabel), s.Totals(InputTokens, byModelLabel), s.Totals(OutputTokens, byModelLabel)
	all := NewProcesses(0).Apply("t", "e", s, time.Unix(0, 0)).Usage.Resolve()
	for model, want := range fixtureTotals {
		// The README rounds spend to six decimals.
		if math.Abs(spend[model]-want.spend) > 6e-7 {
			t.Errorf("%s spend %v, want %v", model, spend[model], want.spend)
		}
		ok, failed := all.Requests[RequestKey{model, "success"}], all.Requests[RequestKey{model, "failure"}]
		if in[model] != want.input || out[model] != want.output || ok+failed != want.requests || failed != want.failed {
			t.Errorf("%s: in %v out %v requests %v failed %v; want %+v", model, in[model], out[model], ok+failed, failed, want)
		}
	}
	if len(spend) != len(fixtureTotals) {
		t.Errorf("models %v", spend)
	}
	if s.StartTime != 1.79022952141e+09 || s.Simplified {
		t.Errorf("start time %v simplified %v", s.StartTime, s.Simplified)
	}
	// Per end user: requests without one are the empty user.
	users := s.Totals(Spend, func(l Labels) string { return l.User })
	anonymous, cust1042 := users[""], users["cust_1042"]
	if anonymous <= 0 || cust1042 <= 0 {
		t.Errorf("per-user spend: anonymous %v, cust_1042 %v", anonymous, cust1042)
	}
	if h := s.Latency["gpt-4o-mini"]; h == nil || h.Count != 7966 || h.Buckets[math.Inf(1)] != 7966 || len(h.Buckets) != 18 {
		t.Errorf("gpt-4o-mini latency %+v", h)
	}
	if s.CacheHits["gpt-4o-mini"] != 360 || s.CacheMiss["gpt-4o-mini"] != 2626 {
		t.Errorf("cache hits %v misses %v", s.CacheHits, s.CacheMiss)
	}
	var team Budget
	for _, b := range s.Budgets {
		if b.Scope == "team" && b.Name == "support-bots" {
			team = b
		}
		if b.Scope == "team" && b.Name == "data-science" && !math.IsNaN(b.Remaining) {
			t.Errorf("an unlimited budget (+Inf) must read as not set: %+v", b)
		}
	}
	if team.Max != 2500 || team.Remaining != 507.25911265000536 {
		t.Errorf("support-bots budget %+v", team)
	}
}

func TestParseByProviderModelAndInternalUser(t *testing.T) {
	s, err := Parse(bytes.NewReader(readFixture(t)), Options{ModelLabel: "model", UserLabel: "user"})
	if err != nil {
		t.Fatal(err)
	}
	azure := s.Totals(Spend, byModelLabel)["gpt-4o-eus2"]
	devKim := s.Totals(Spend, func(l Labels) string { return l.User })["dev.kim"]
	if azure <= 0 || devKim <= 0 {
		t.Errorf("spend on the Azure deployment %v, of dev.kim %v", azure, devKim)
	}
}

func TestParseSimplifiedSet(t *testing.T) {
	text := `# HELP litellm_total_cost Total cost
# TYPE litellm_total_cost counter
litellm_total_cost{model="gpt-4"} 12.5
litellm_total_cost{model="gpt-3.5-turbo"} 0.75
# TYPE litellm_requests_total counter
litellm_requests_total{model="gpt-4"} 100
litellm_requests_total{model="gpt-3.5-turbo"} 40
# TYPE litellm_errors_total counter
litellm_errors_total{model="gpt-4"} 3
litellm_input_tokens_total{model="gpt-4"} 200000
litellm_output_tokens_total{model="gpt-4"} 50000
litellm_latency_seconds_sum{model="gpt-4"} 95.5
`
	s, err := Parse(strings.NewReader(text), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The set carries only model: it stands in for requested_model.
	u := NewProcesses(0).Apply("t", "e", s, time.Unix(0, 0)).Usage.Resolve()
	if !s.Simplified || u.Spend[SpendKey{Model: "gpt-4"}] != 12.5 ||
		u.Requests[RequestKey{"gpt-4", "success"}] != 97 || u.Requests[RequestKey{"gpt-4", "failure"}] != 3 ||
		u.Requests[RequestKey{"gpt-3.5-turbo", "success"}] != 40 ||
		u.Tokens[TokenKey{Model: "gpt-4", Direction: "input"}] != 200000 ||
		u.Tokens[TokenKey{Model: "gpt-4", Direction: "output"}] != 50000 {
		t.Errorf("simplified set read as %+v", u)
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]string{
		"garbage":         "<html><body>Bad Gateway</body></html>\n",
		"not litellm":     "# TYPE up gauge\nup 1\n",
		"broken sample":   "# TYPE litellm_spend_metric_total counter\nlitellm_spend_metric_total{model=\"x\" 1\n",
		"truncated":       "# TYPE litellm_spend_metric_total counter\nlitellm_spend_metric_total{model=\"x\"} 0.62",
		"invalid utf8":    "# TYPE litellm_spend_metric_total counter\nlitellm_spend_metric_total{model=\"\xff\"} 1\n",
		"empty":           "",
		"bad value":       "# TYPE litellm_spend_metric_total counter\nlitellm_spend_metric_total{model=\"x\"} lots\n",
		"duplicate label": "# TYPE litellm_spend_metric_total counter\nlitellm_spend_metric_total{model=\"x\",model=\"y\"} 1\n",
	}
	for name, body := range cases {
		if s, err := Parse(strings.NewReader(body), Options{}); err == nil {
			t.Errorf("%s: accepted as %+v", name, s)
		}
	}
}

func newClient(t *testing.T, url string, timeout time.Duration) *Client {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL, cfg.Timeout = url, timeout
	target, err := ParseTarget(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cfg, target)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fetch scrapes a client's single endpoint.
func fetch(c *Client) (*Snapshot, error) {
	eps, err := c.Target().Endpoints(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	return c.Fetch(context.Background(), eps[0])
}

func TestClientFetch(t *testing.T) {
	body := readFixture(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || !strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(body)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, time.Second) // base URL: /metrics is appended
	s, err := fetch(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Series) == 0 || c.Target().Path != "/metrics" {
		t.Errorf("fetched %d series from %+v", len(s.Series), c.Target())
	}
}

// LiteLLM down, slow, failing, or sending garbage or half a body: an error,
// never a partial snapshot.
func TestClientFailures(t *testing.T) {
	body := readFixture(t)
	handlers := map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) },
		"slow": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		},
		"garbage": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("\x00\x01\x02 not metrics at all\n"))
		},
		"html": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>login</html>"))
		},
		"truncated": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body[:len(body)/2])
			// Returning closes the connection short of Content-Length.
		},
		"truncated, chunked": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		},
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			start := time.Now()
			s, err := fetch(newClient(t, srv.URL+"/metrics", 300*time.Millisecond))
			if err == nil {
				t.Fatalf("accepted: %d series", len(s.Series))
			}
			if time.Since(start) > 1500*time.Millisecond {
				t.Errorf("took %s: the timeout is 300ms", time.Since(start))
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		if _, err := fetch(newClient(t, "http://"+addr, time.Second)); err == nil {
			t.Fatal("no error from a closed port")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.URL = "litellm:4000" }, `url: must be an http(s) URL`},
		{func(c *Config) { c.Timeout = time.Minute }, "timeout: must be positive and at most the interval"},
		{func(c *Config) { c.UserLabel = "email" }, `user_label: must be end_user, user, api_key_alias or team_alias, not "email"`},
		{func(c *Config) { c.ModelLabel = "deployment" }, `model_label: must be requested_model or model`},
		{func(c *Config) { c.URL = "dns+http://litellm:4000" }, `url: must be an http(s) URL`},
		{func(c *Config) { c.Targets = []string{"http://a:4000", "ftp://b"} }, `targets[1]: must be an http(s) URL or dns+http(s)`},
		{func(c *Config) { c.Targets = []string{"dns+http://10.0.0.1:4000"} }, `targets[0]: dns+ needs a name to resolve`},
		{func(c *Config) { c.RefreshInterval = time.Millisecond }, "refresh_interval: must be at least 1s"},
		{func(c *Config) { c.ProcessRetention = time.Second }, "process_retention: must be at least the interval"},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		c.URL = "http://litellm:4000"
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
}

// exposition writes LiteLLM's per-request families for models x users, with
// the label sets LiteLLM uses, as one scrape would carry them.
func exposition(models, users int) []byte {
	var b bytes.Buffer
	b.WriteString("# HELP process_start_time_seconds Start time\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.79e+09\n")
	labels := func(m, u int) string {
		return fmt.Sprintf(`api_key_alias="key-%d",api_provider="openai",end_user="cust_%05d",hashed_api_key="%064x",model="provider-model-%02d",model_id="%064x",org_alias="acme",requested_model="model-%02d",team="%08x",team_alias="team-%d",user="svc-%d"`,
			u%20, u, u, m, m, m, u%10, u%10, u%50)
	}
	counter := func(name, help string, val func(m, u int) float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for m := 0; m < models; m++ {
			for u := 0; u < users; u++ {
				fmt.Fprintf(&b, "%s{%s} %g\n", name, labels(m, u), val(m, u))
			}
		}
	}
	counter(famSpend, "Total spend on LLM requests", func(m, u int) float64 { return float64(m*users+u) * 0.0013 })
	counter(famInputTokens, "Total input tokens", func(m, u int) float64 { return float64(1000 + m + u) })
	counter(famOutputTokens, "Total output tokens", func(m, u int) float64 { return float64(300 + u) })
	counter("litellm_total_tokens_metric_total", "Total tokens", func(m, u int) float64 { return float64(1300 + m + 2*u) })
	counter("litellm_requests_metric_total", "deprecated", func(m, u int) float64 { return 10 })
	fmt.Fprintf(&b, "# HELP %s requests\n# TYPE %s counter\n", famProxyRequests, famProxyRequests)
	for m := 0; m < models; m++ {
		for u := 0; u < users; u++ {
			fmt.Fprintf(&b, "%s{%s,route=\"/v1/chat/completions\",status_code=\"200\"} 9\n", famProxyRequests, labels(m, u))
			fmt.Fprintf(&b, "%s{%s,route=\"/v1/chat/completions\",status_code=\"429\"} 1\n", famProxyRequests, labels(m, u))
		}
	}
	bounds := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.0", "5.0", "10.0", "30.0", "60.0", "120.0", "300.0", "420.0", "600.0", "+Inf"}
	fmt.Fprintf(&b, "# HELP %s latency\n# TYPE %s histogram\n", famLatency, famLatency)
	for m := 0; m < models; m++ {
		for u := 0; u < users; u++ {
			l := labels(m, u)
			for i, le := range bounds {
				fmt.Fprintf(&b, "%s_bucket{%s,le=\"%s\"} %d\n", famLatency, l, le, min(i, 9))
			}
			fmt.Fprintf(&b, "%s_count{%s} 9\n%s_sum{%s} 12.5\n", famLatency, l, famLatency, l)
		}
	}
	return b.Bytes()
}

// BenchmarkParse is one scrape and transform of an exposition with 50
// models x 1,000 users (50,000 label sets in every per-request family).
func BenchmarkParse(b *testing.B) {
	data := exposition(benchModels, benchUsers)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Parse(bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(s.Totals(Spend, func(l Labels) string { return l.Model + "\x00" + l.User })); n != benchModels*benchUsers {
			b.Fatalf("%d spend keys", n)
		}
	}
	b.ReportMetric(float64(len(data))/1e6, "MB/scrape")
}

// BenchmarkApply is the increments of a scrape over the one before, of
// such an exposition, and their resolution into series.
func BenchmarkApply(b *testing.B) {
	s, err := Parse(bytes.NewReader(exposition(benchModels, benchUsers)), Options{})
	if err != nil {
		b.Fatal(err)
	}
	p := NewProcesses(0)
	p.Apply("t", "e", s, time.Unix(0, 0))
	b.ReportAllocs()
	for b.Loop() {
		p.Apply("t", "e", s, time.Unix(0, 0)).Usage.Resolve()
	}
	b.ReportMetric(float64(len(s.Series)), "series")
}

// The benchmark's size: LiteLLM with 50 models and 1,000 end users.
var benchModels, benchUsers = envInt("LITELLM_BENCH_MODELS", 50), envInt("LITELLM_BENCH_USERS", 1000)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
