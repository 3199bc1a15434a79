// Package demo makes demo traffic: an API gateway's JSON log and an nginx
// access log of realistic calls (five services, routes with ids, users of
// four tiers, peak hours, errors, timeouts, repeated requests, a few users
// past their quota, model calls with tokens), and a LiteLLM-shaped /metrics
// that reports the model calls it logged: the same calls, tokens and spend.
// It is a demo: cmd/usage-demo runs it for docker-compose.yml and
// `make demo`, and nothing else does.
package demo

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/usage-exporter/usage-exporter/pricing"
)

// Files the demo writes in its directory.
const (
	GatewayLog = "gateway.log"
	NginxLog   = "nginx-access.log"
)

// model is a model the demo's LLM calls use, with its share of them.
type model struct {
	name, provider string
	share          float64
}

var models = []model{
	{"gpt-4o-mini", "openai", 0.40}, {"gpt-4o", "openai", 0.30},
	{"claude-3-5-sonnet", "anthropic", 0.20}, {"gpt-4", "openai", 0.10},
}

var tiers = []string{"trial", "starter", "professional", "enterprise"}

// teams are LiteLLM teams, with their budgets; users belong to one each.
var teams = []struct {
	id, alias, key string
	budget         float64
	org, orgAlias  string // the organisation: the logs' org_id, LiteLLM's org_id
}{
	{"5b2d8e6f-0001", "support-bots", "support-prod", 2500, "org-acme", "acme-corp"},
	{"5b2d8e6f-0002", "data-science", "ds-batch", 1000, "org-acme", "acme-corp"},
	{"5b2d8e6f-0003", "web-app", "web-prod", 5000, "org-globex", "globex"},
}

// LiteLLM's request latency buckets (v1.101).
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 420, 600}

// llmKey is a LiteLLM label set: model and end user (team and key follow
// from the user).
type llmKey struct{ model, user string }

type llmCounts struct {
	requests, failures, input, output, spend, cacheHits, cacheMisses float64
	latency                                                          []float64 // cumulative per bucket
	latencySum                                                       float64
}

// Demo writes the logs and keeps LiteLLM's counters.
type Demo struct {
	dir    string
	users  []string
	prices *pricing.Table
	start  time.Time // LiteLLM's process start time

	mu  sync.Mutex
	rng *rand.Rand
	n   int64
	llm map[llmKey]*llmCounts
}

// New makes a demo writing into dir for the given number of users.
func New(dir string, users int, seed uint64, start time.Time) (*Demo, error) {
	prices, err := pricing.Load(pricing.DefaultConfig())
	if err != nil {
		return nil, err
	}
	d := &Demo{dir: dir, prices: prices, start: start, rng: rand.New(rand.NewPCG(seed, 7)), llm: map[llmKey]*llmCounts{}}
	for i := range max(users, 8) {
		d.users = append(d.users, fmt.Sprintf("user-%03d", i+1))
	}
	return d, os.MkdirAll(dir, 0o755)
}

// Tier is the plan tier of a demo user: every fourth user from the first is
// on trial, and so on.
func (d *Demo) Tier(user string) string {
	var i int
	fmt.Sscanf(user, "user-%d", &i)
	return tiers[(i-1)%len(tiers)]
}

// pickUser draws a user: user-001 and user-005 (trial) are heavy, so that
// they pass their quota; the rest share the traffic with a long tail.
func (d *Demo) pickUser() string {
	switch x := d.rng.Float64(); {
	case x < 0.06:
		return d.users[0]
	case x < 0.10:
		return d.users[4]
	default:
		// Zipf-like: low numbers are busier.
		k := int(math.Pow(d.rng.Float64(), 2) * float64(len(d.users)))
		return d.users[min(k, len(d.users)-1)]
	}
}

// Rate is the share of the peak rate at t: quiet at night (UTC), busiest in
// the afternoon.
func Rate(t time.Time) float64 {
	h := float64(t.UTC().Hour()) + float64(t.UTC().Minute())/60
	return 0.25 + 0.75*math.Exp(-math.Pow((h-14)/4, 2))
}

// Write appends n calls dated over [from, to) to the logs, and counts the
// model calls for LiteLLM.
func (d *Demo) Write(n int, from, to time.Time) error {
	if n <= 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	gw, err := os.OpenFile(filepath.Join(d.dir, GatewayLog), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer gw.Close()
	ng, err := os.OpenFile(filepath.Join(d.dir, NginxLog), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer ng.Close()
	jw, nw := bufio.NewWriterSize(gw, 1<<16), bufio.NewWriterSize(ng, 1<<16)
	step := to.Sub(from) / time.Duration(n)
	for i := range n {
		d.call(jw, nw, from.Add(time.Duration(i)*step))
	}
	if err := jw.Flush(); err != nil {
		return err
	}
	return nw.Flush()
}

// call writes one call: tts and stt are served by nginx in front of their
// backends (the nginx log), the rest log JSON at the gateway.
func (d *Demo) call(jw, nw io.Writer, t time.Time) {
	r := d.rng
	d.n++
	user := d.pickUser()
	status := 200
	switch x := r.Float64(); {
	case x < 0.02:
		status = 500
	case x < 0.03:
		status = 504
	case x < 0.05:
		status = 429
	case x < 0.06:
		status = 400
	}
	seconds := math.Exp(r.NormFloat64()*0.6 - 1.2)
	switch x := r.Float64(); {
	case x < 0.15: // tts
		fmt.Fprintf(nw, "10.0.%d.%d - %s [%s] \"POST /api/v1/tts HTTP/1.1\" %d %d \"-\" \"OpenAI/Python 1.35.3\" %.3f\n",
			r.IntN(8), r.IntN(250), user, t.UTC().Format("02/Jan/2006:15:04:05 -0700"), status, 20000+r.IntN(60000), seconds*2)
		return
	case x < 0.25: // stt
		fmt.Fprintf(nw, "10.0.%d.%d - %s [%s] \"POST /api/v1/stt HTTP/1.1\" %d %d \"-\" \"OpenAI/Python 1.35.3\" %.3f\n",
			r.IntN(8), r.IntN(250), user, t.UTC().Format("02/Jan/2006:15:04:05 -0700"), status, 500+r.IntN(3000), seconds*3)
		return
	}
	service, path, extra := "search", fmt.Sprintf("/api/v1/search?q=item%d", r.IntN(1000)), ""
	switch x := r.Float64(); {
	case x < 0.55:
		service, path = "llm", "/api/v1/llm/chat/completions"
		m := pickModel(r.Float64())
		in, out := 80+int(math.Exp(r.NormFloat64()*0.9+6)), 20+r.IntN(600)
		key := fmt.Sprintf("%016x", r.IntN(1<<20))
		cached := r.Float64() < 0.2
		if cached { // a repeated prompt
			key = fmt.Sprintf("%016x", r.IntN(40))
		}
		extra = fmt.Sprintf(`,"model":"%s","input_tokens":%d,"output_tokens":%d,"cache_key":"%s"`, m.name, in, out, key)
		d.countLLM(m, user, status, in, out, seconds*4, cached)
		seconds *= 4
	case x < 0.80:
		service, path = "embeddings", "/api/v1/embeddings"
		extra = fmt.Sprintf(`,"model":"text-embedding-3-small","input_tokens":%d`, 20+r.IntN(2000))
	case x < 0.85:
		service, path = "other", fmt.Sprintf("/api/v1/users/%d/usage", 1000+r.IntN(5000))
	}
	fmt.Fprintf(jw, `{"timestamp":"%s","user_id":"%s","org_id":"%s","tier":"%s","method":"POST","path":"%s","status":%d,"duration_ms":%.1f,"size":%d,"service":"%s"%s}`+"\n",
		t.UTC().Format("2006-01-02T15:04:05.000Z"), user, teams[team(user)].org, d.Tier(user), path, status, seconds*1000, 200+r.IntN(8000), service, extra)
}

func pickModel(x float64) model {
	for _, m := range models {
		if x < m.share {
			return m
		}
		x -= m.share
	}
	return models[0]
}

// countLLM adds a model call to LiteLLM's counters: requests by status,
// tokens, spend at the price table's prices, latency, the response cache.
func (d *Demo) countLLM(m model, user string, status, in, out int, seconds float64, cached bool) {
	k := llmKey{m.name, user}
	c := d.llm[k]
	if c == nil {
		c = &llmCounts{latency: make([]float64, len(latencyBuckets))}
		d.llm[k] = c
	}
	if status >= 400 {
		c.failures++
		return
	}
	c.requests++
	c.input += float64(in)
	c.output += float64(out)
	if _, e, ok := d.prices.Lookup(m.name); ok && e.Priced() {
		c.spend += float64(in)**e.Input/1e6 + float64(out)**e.Output/1e6
	}
	if cached {
		c.cacheHits++
	} else {
		c.cacheMisses++
	}
	for i, le := range latencyBuckets {
		if seconds <= le {
			c.latency[i]++
		}
	}
	c.latencySum += seconds
}

// Calls is how many calls the demo wrote.
func (d *Demo) Calls() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// team is the LiteLLM team of a user.
func team(user string) int {
	var i int
	fmt.Sscanf(user, "user-%d", &i)
	return i % len(teams)
}

// WriteMetrics writes LiteLLM's /metrics (its v1.101 families and labels)
// for the model calls logged so far.
func (d *Demo) WriteMetrics(w io.Writer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keys := make([]llmKey, 0, len(d.llm))
	for k := range d.llm {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].model != keys[j].model {
			return keys[i].model < keys[j].model
		}
		return keys[i].user < keys[j].user
	})
	labels := func(k llmKey) string {
		tm := teams[team(k.user)]
		provider := "openai"
		for _, m := range models {
			if m.name == k.model {
				provider = m.provider
			}
		}
		return fmt.Sprintf(`api_key_alias="%s",api_provider="%s",end_user="%s",hashed_api_key="%x",model="%s",org_alias="%s",org_id="%s",requested_model="%s",team="%s",team_alias="%s",user="%s"`,
			tm.key, provider, k.user, len(tm.key)*7919, k.model, tm.orgAlias, tm.org, k.model, tm.id, tm.alias, k.user)
	}
	family := func(name, typ, help string, value func(*llmCounts) float64) {
		fmt.Fprintf(w, "# HELP %s_total %s\n# TYPE %s_total %s\n", name, help, name, typ)
		for _, k := range keys {
			fmt.Fprintf(w, "%s_total{%s} %g\n", name, labels(k), value(d.llm[k]))
		}
	}
	fmt.Fprintf(w, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n", float64(d.start.UnixMilli())/1000)
	family("litellm_spend_metric", "counter", "Total spend on LLM requests", func(c *llmCounts) float64 { return c.spend })
	family("litellm_input_tokens_metric", "counter", "Total number of input tokens from LLM requests", func(c *llmCounts) float64 { return c.input })
	family("litellm_output_tokens_metric", "counter", "Total number of output tokens from LLM requests", func(c *llmCounts) float64 { return c.output })
	family("litellm_total_tokens_metric", "counter", "Total number of input + output tokens from LLM requests", func(c *llmCounts) float64 { return c.input + c.output })
	family("litellm_requests_metric", "counter", "Total number of LLM calls to litellm - track total per API Key, team, user", func(c *llmCounts) float64 { return c.requests })
	family("litellm_cache_hits_metric", "counter", "Total number of LiteLLM cache hits", func(c *llmCounts) float64 { return c.cacheHits })
	family("litellm_cache_misses_metric", "counter", "Total number of LiteLLM cache misses", func(c *llmCounts) float64 { return c.cacheMisses })
	fmt.Fprintf(w, "# HELP litellm_proxy_total_requests_metric_total Total number of requests made to the proxy server - track number of client side requests\n# TYPE litellm_proxy_total_requests_metric_total counter\n")
	for _, k := range keys {
		c := d.llm[k]
		l := strings.Replace(labels(k), `model="`+k.model+`",`, "", 1)
		fmt.Fprintf(w, "litellm_proxy_total_requests_metric_total{%s,route=\"/chat/completions\",status_code=\"200\"} %g\n", l, c.requests)
		if c.failures > 0 {
			fmt.Fprintf(w, "litellm_proxy_total_requests_metric_total{%s,route=\"/chat/completions\",status_code=\"500\"} %g\n", l, c.failures)
		}
	}
	fmt.Fprintf(w, "# HELP litellm_request_total_latency_metric Total latency (seconds) for a request to LiteLLM\n# TYPE litellm_request_total_latency_metric histogram\n")
	for _, k := range keys {
		c := d.llm[k]
		l := labels(k)
		for i, le := range latencyBuckets {
			fmt.Fprintf(w, "litellm_request_total_latency_metric_bucket{%s,le=\"%g\"} %g\n", l, le, c.latency[i])
		}
		fmt.Fprintf(w, "litellm_request_total_latency_metric_bucket{%s,le=\"+Inf\"} %g\n", l, c.requests)
		fmt.Fprintf(w, "litellm_request_total_latency_metric_count{%s} %g\nlitellm_request_total_latency_metric_sum{%s} %g\n", l, c.requests, l, c.latencySum)
	}
	spent := make([]float64, len(teams))
	for _, k := range keys {
		spent[team(k.user)] += d.llm[k].spend
	}
	fmt.Fprintf(w, "# HELP litellm_remaining_team_budget_metric Remaining budget for team\n# TYPE litellm_remaining_team_budget_metric gauge\n")
	for i, tm := range teams {
		fmt.Fprintf(w, "litellm_remaining_team_budget_metric{team=\"%s\",team_alias=\"%s\"} %g\n", tm.id, tm.alias, tm.budget-spent[i])
	}
	fmt.Fprintf(w, "# HELP litellm_team_max_budget_metric Maximum budget set for team\n# TYPE litellm_team_max_budget_metric gauge\n")
	for _, tm := range teams {
		fmt.Fprintf(w, "litellm_team_max_budget_metric{team=\"%s\",team_alias=\"%s\"} %g\n", tm.id, tm.alias, tm.budget)
	}
}

// Run writes calls as they happen until ctx ends: peak calls a second at
// the busiest hour, fewer at night (Rate), in batches every tick.
func (d *Demo) Run(done <-chan struct{}, peak float64, tick time.Duration, now func() time.Time) error {
	last := now()
	carry := 0.0
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-t.C:
		}
		at := now()
		carry += peak * Rate(at) * at.Sub(last).Seconds()
		n := int(carry)
		carry -= float64(n)
		if err := d.Write(n, last, at); err != nil {
			return err
		}
		last = at
	}
}

// Backfill writes the calls of the span before now, a minute at a time, at
// the rate of each minute: the dashboards have history at once, and the
// heavy users are past their quota (unless the month began within the
// span: the calls before it count toward the last period).
func (d *Demo) Backfill(span time.Duration, peak float64, now time.Time) error {
	start := now.Add(-span)
	for t := start; t.Before(now); t = t.Add(time.Minute) {
		end := t.Add(time.Minute)
		if end.After(now) {
			end = now
		}
		if err := d.Write(int(peak*Rate(t)*end.Sub(t).Seconds()), t, end); err != nil {
			return err
		}
	}
	return nil
}
