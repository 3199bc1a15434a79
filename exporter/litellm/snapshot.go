// Package litellm reads a LiteLLM proxy's /metrics and reduces it to what
// usage-exporter needs: spend, tokens and requests per model and user
// (cumulative counters, for deltas), and the latency, cache and budget state
// (for re-export). Both LiteLLM's metric names (v1.x, litellm_*_metric) and
// the older simplified set (litellm_total_cost, litellm_requests_total, ...)
// are understood.
package litellm

import (
	"maps"
	"math"
	"sort"
)

// SpendKey identifies spend: per model, user, team and API key.
type SpendKey struct {
	Model, User, Team, Key string
}

// TokenKey identifies token counts per model, user and direction.
type TokenKey struct {
	Model, User, Direction string
}

// RequestKey identifies request counts per model and status (success, failure).
type RequestKey struct {
	Model, Status string
}

// Histogram is a cumulative latency histogram summed over a model's series.
type Histogram struct {
	Buckets map[float64]float64 // upper bound -> cumulative count
	Count   float64
	Sum     float64
}

// Budget is a LiteLLM budget: scope is team, org, api_key or user.
type Budget struct {
	Scope, Name                  string
	Remaining, Max, HoursToReset float64 // NaN when not reported (or unlimited)
}

// Snapshot is one scrape of LiteLLM, aggregated.
type Snapshot struct {
	// StartTime is LiteLLM's process_start_time_seconds; 0 when absent.
	StartTime float64
	Spend     map[SpendKey]float64
	Tokens    map[TokenKey]float64
	Requests  map[RequestKey]float64
	Latency   map[string]*Histogram
	CacheHits map[string]float64
	CacheMiss map[string]float64
	Budgets   []Budget
	// Simplified is true when the older simplified metric set was found.
	Simplified bool
}

func newSnapshot() *Snapshot {
	return &Snapshot{
		Spend: map[SpendKey]float64{}, Tokens: map[TokenKey]float64{}, Requests: map[RequestKey]float64{},
		Latency: map[string]*Histogram{}, CacheHits: map[string]float64{}, CacheMiss: map[string]float64{},
	}
}

// Counters are the cumulative values deltas are computed from; they are
// what the exporter checkpoints between restarts.
type Counters struct {
	StartTime float64        `json:"start_time"`
	Spend     []SpendValue   `json:"spend"`
	Tokens    []TokenValue   `json:"tokens"`
	Requests  []RequestValue `json:"requests"`
	spend     map[SpendKey]float64
	tokens    map[TokenKey]float64
	requests  map[RequestKey]float64
}

// SpendValue, TokenValue and RequestValue are Counters entries in JSON.
type (
	SpendValue struct {
		SpendKey
		Value float64 `json:"value"`
	}
	TokenValue struct {
		TokenKey
		Value float64 `json:"value"`
	}
	RequestValue struct {
		RequestKey
		Value float64 `json:"value"`
	}
)

// Counters returns the snapshot's cumulative counters.
func (s *Snapshot) Counters() *Counters {
	return &Counters{StartTime: s.StartTime, spend: s.Spend, tokens: s.Tokens, requests: s.Requests}
}

// Encode fills the JSON fields, sorted, from the maps.
func (c *Counters) Encode() *Counters {
	out := &Counters{StartTime: c.StartTime, spend: c.spend, tokens: c.tokens, requests: c.requests}
	for k, v := range c.spend {
		out.Spend = append(out.Spend, SpendValue{k, v})
	}
	for k, v := range c.tokens {
		out.Tokens = append(out.Tokens, TokenValue{k, v})
	}
	for k, v := range c.requests {
		out.Requests = append(out.Requests, RequestValue{k, v})
	}
	sort.Slice(out.Spend, func(i, j int) bool { return lessSpend(out.Spend[i].SpendKey, out.Spend[j].SpendKey) })
	sort.Slice(out.Tokens, func(i, j int) bool {
		a, b := out.Tokens[i].TokenKey, out.Tokens[j].TokenKey
		return a.Model+"\x00"+a.User+"\x00"+a.Direction < b.Model+"\x00"+b.User+"\x00"+b.Direction
	})
	sort.Slice(out.Requests, func(i, j int) bool {
		a, b := out.Requests[i].RequestKey, out.Requests[j].RequestKey
		return a.Model+"\x00"+a.Status < b.Model+"\x00"+b.Status
	})
	return out
}

func lessSpend(a, b SpendKey) bool {
	return a.Model+"\x00"+a.User+"\x00"+a.Team+"\x00"+a.Key < b.Model+"\x00"+b.User+"\x00"+b.Team+"\x00"+b.Key
}

// Decode rebuilds the maps from the JSON fields.
func (c *Counters) Decode() *Counters {
	c.spend, c.tokens, c.requests = map[SpendKey]float64{}, map[TokenKey]float64{}, map[RequestKey]float64{}
	for _, v := range c.Spend {
		c.spend[v.SpendKey] = v.Value
	}
	for _, v := range c.Tokens {
		c.tokens[v.TokenKey] = v.Value
	}
	for _, v := range c.Requests {
		c.requests[v.RequestKey] = v.Value
	}
	return c
}

// Changes are the increments between two snapshots.
type Changes struct {
	Spend    map[SpendKey]float64
	Tokens   map[TokenKey]float64
	Requests map[RequestKey]float64
	// First is true when there was no earlier snapshot: the increments are
	// everything LiteLLM counted since it started.
	First bool
	// Restarted is true when LiteLLM restarted since the earlier snapshot.
	Restarted bool
}

// Delta computes what cur adds to prev (nil for none). A LiteLLM restart
// (a new process_start_time_seconds) makes every value an increment from
// zero. Without a start time, a value that went down is taken as a reset of
// that series. With one, it is not (a series LiteLLM dropped lowers a sum
// without anything having been undone) and counts zero. Never negative.
func Delta(prev, cur *Counters) Changes {
	ch := Changes{Spend: map[SpendKey]float64{}, Tokens: map[TokenKey]float64{}, Requests: map[RequestKey]float64{}}
	ch.First = prev == nil
	if !ch.First {
		ch.Restarted = cur.StartTime != 0 && prev.StartTime != 0 && cur.StartTime != prev.StartTime
	}
	knowsStart := cur.StartTime != 0
	inc := func(now, before float64, seen bool) float64 {
		switch {
		case ch.First || ch.Restarted || !seen:
			return now
		case now >= before:
			return now - before
		case knowsStart:
			return 0
		default:
			return now
		}
	}
	var ps map[SpendKey]float64
	var pt map[TokenKey]float64
	var pr map[RequestKey]float64
	if prev != nil {
		ps, pt, pr = prev.spend, prev.tokens, prev.requests
	}
	increments(ch.Spend, ps, cur.spend, inc)
	increments(ch.Tokens, pt, cur.tokens, inc)
	increments(ch.Requests, pr, cur.requests, inc)
	return ch
}

// increments puts into out the positive, finite increment of every series
// of cur over prev (nil for none).
func increments[K comparable](out, prev, cur map[K]float64, inc func(now, before float64, seen bool) float64) {
	for k, v := range cur {
		before, seen := prev[k]
		if d := inc(v, before, seen); d > 0 && !math.IsInf(d, 0) {
			out[k] = d
		}
	}
}

// Advance returns the counters to keep after applying cur on top of prev:
// cur's values, plus prev's series that cur lacks (a series missing from one
// scrape must not count whole when it comes back), unless LiteLLM restarted.
func Advance(prev, cur *Counters) *Counters {
	if prev == nil || (cur.StartTime != 0 && prev.StartTime != 0 && cur.StartTime != prev.StartTime) {
		return cur
	}
	out := &Counters{StartTime: cur.StartTime, spend: map[SpendKey]float64{}, tokens: map[TokenKey]float64{},
		requests: map[RequestKey]float64{}}
	if out.StartTime == 0 {
		out.StartTime = prev.StartTime
	}
	// prev's series first, cur's values over them.
	maps.Copy(out.spend, prev.spend)
	maps.Copy(out.spend, cur.spend)
	maps.Copy(out.tokens, prev.tokens)
	maps.Copy(out.tokens, cur.tokens)
	maps.Copy(out.requests, prev.requests)
	maps.Copy(out.requests, cur.requests)
	return out
}
