package exporter

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/pricing"
)

// Reasons of usage_exporter_unpriced_requests_total.
const (
	unpricedUnknownModel = "unknown_model"
	unpricedNoTokens     = "no_tokens"
)

// modelSeries caches the series of one model label and its prices.
type modelSeries struct {
	label         string
	key           string         // the price table key it matched
	entry         *pricing.Entry // nil when unpriced
	success       prometheus.Counter
	failure       prometheus.Counter
	tokens        [5]prometheus.Counter // in tokenDirections order
	requestTokens prometheus.Observer
	cost          map[int]prometheus.Counter // by service
	unpriced      map[string]prometheus.Counter
}

func (in *ingester) newModelSeries(name, label string) *modelSeries {
	ms := &modelSeries{
		label:         label,
		success:       in.m.llmRequests.WithLabelValues(label, "success"),
		failure:       in.m.llmRequests.WithLabelValues(label, "failure"),
		requestTokens: in.m.llmRequestTokens.WithLabelValues(label),
		cost:          map[int]prometheus.Counter{},
		unpriced:      map[string]prometheus.Counter{},
	}
	for i, d := range tokenDirections {
		ms.tokens[i] = in.m.llmTokens.WithLabelValues(label, d)
	}
	if label == otherLabel {
		return ms
	}
	if key, e, ok := in.prices.Lookup(name); ok {
		ms.key, ms.entry = key, e
		// Prices as series, for the models in use: traffic can be priced on
		// another model with one PromQL join.
		in.m.priceMatch.WithLabelValues(label, key).Set(1)
		for tokenType, v := range e.PerToken() {
			in.m.price.WithLabelValues(label, tokenType).Set(v)
		}
	}
	return ms
}

// model returns the series of a model name, folding names beyond the cap.
func (in *ingester) model(name []byte) *modelSeries {
	if len(name) == 0 {
		name = unknownModel
	}
	if ms, ok := in.models[string(name)]; ok {
		return ms
	}
	if len(in.models) >= in.cfg.Pricing.MaxModels {
		in.modelOverflow.Inc()
		if in.otherModel == nil {
			in.otherModel = in.newModelSeries(otherLabel, otherLabel)
		}
		return in.otherModel
	}
	ms := in.newModelSeries(string(name), string(name))
	in.models[ms.label] = ms
	return ms
}

var unknownModel = []byte("unknown")

func (in *ingester) userCost(us *userSeries, tier, svc int) prometheus.Counter {
	k := uint32(tier)<<16 | uint32(svc)
	c, ok := us.cost[k]
	if !ok {
		c = in.m.userCost.WithLabelValues(us.label, in.tiers[tier], in.services[svc].name)
		us.cost[k] = c
	}
	return c
}

func (in *ingester) userTokens(us *userSeries, tier int) prometheus.Counter {
	c, ok := us.tokens[tier]
	if !ok {
		c = in.m.userTokens.WithLabelValues(us.label, in.tiers[tier])
		us.tokens[tier] = c
	}
	return c
}

func (ms *modelSeries) costFor(m *Metrics, svc int, service string) prometheus.Counter {
	c, ok := ms.cost[svc]
	if !ok {
		c = m.cost.WithLabelValues(service, ms.label)
		ms.cost[svc] = c
	}
	return c
}

func (ms *modelSeries) unpricedFor(m *Metrics, reason string) prometheus.Counter {
	c, ok := ms.unpriced[reason]
	if !ok {
		c = m.unpriced.WithLabelValues(ms.label, reason)
		ms.unpriced[reason] = c
	}
	return c
}

// modelCall counts, and prices, a model call from the logs: a logged cost
// is taken as it is; otherwise the tokens are priced on the model's entry,
// following its provider's token convention. A call that cannot be priced
// is counted as unpriced, never as free; its tokens are counted anyway.
// It returns the tokens counted.
func (in *ingester) modelCall(eb *eventBatch, ev *event, svc int, us *userSeries, tier int) int64 {
	ms := in.model(eb.bytes(ev.model))
	if ev.status < 400 {
		ms.success.Inc()
	} else {
		ms.failure.Inc()
	}
	var ch pricing.Charge
	if ms.entry != nil {
		ch = ms.entry.Charge(ms.key, ev.tokens)
	} else {
		ch = pricing.Buckets(ev.tokens, pricing.ConventionOpenAI)
	}
	total := int64(0)
	if ev.hasTokens {
		for i, n := range [...]int64{ch.Input, ch.Output, ch.CacheRead, ch.CacheWrite + ch.CacheWrite1h, ch.Reasoning} {
			if n > 0 {
				ms.tokens[i].Add(float64(n))
				total += n
			}
		}
		if total > 0 {
			in.userTokens(us, tier).Add(float64(total))
		}
		ms.requestTokens.Observe(float64(ch.Prompt()))
	}
	var cost float64
	switch {
	case !ev.hasTokens && !ev.hasCost && ev.status >= 400:
		return 0 // a failed call without usage cost nothing
	case ev.hasCost:
		cost = ev.cost
	case ms.entry != nil && ev.hasTokens:
		cost = ch.Cost
	case ms.entry == nil:
		ms.unpricedFor(in.m, unpricedUnknownModel).Inc()
		return total
	default:
		ms.unpricedFor(in.m, unpricedNoTokens).Inc()
		return total
	}
	if cost > 0 {
		ms.costFor(in.m, svc, in.services[svc].name).Add(cost)
		in.userCost(us, tier, svc).Add(cost)
	}
	return total
}

// applyLiteLLM turns a LiteLLM scrape into increments of the same series
// the logs feed: the delta from the counters last applied, a LiteLLM restart
// counting from zero. The counters applied are kept, and checkpointed, so a
// repeated scrape adds nothing and an exporter restart adds only what is new.
func (in *ingester) applyLiteLLM(snap *litellm.Snapshot) {
	cur := snap.Counters()
	ch := litellm.Delta(in.litellm, cur)
	in.litellm = litellm.Advance(in.litellm, cur)
	if ch.Restarted {
		in.m.litellmRestarts.Inc()
	}
	if !in.cfg.LiteLLM.Spend {
		return
	}
	svc := in.llmService
	for k, v := range ch.Spend {
		ms := in.model([]byte(k.Model))
		us, tier := in.user([]byte(k.User), nil)
		ms.costFor(in.m, svc, in.services[svc].name).Add(v)
		in.userCost(us, tier, svc).Add(v)
		if k.Team != "" {
			labelCounter(in.teams, in.m.teamCost, k.Team).Add(v)
		}
		if k.Key != "" {
			labelCounter(in.keys, in.m.keyCost, k.Key).Add(v)
		}
	}
	now := in.now()
	for k, v := range ch.Tokens {
		ms := in.model([]byte(k.Model))
		us, tier := in.user([]byte(k.User), nil)
		i := 0 // input
		if k.Direction == "output" {
			i = 1
		}
		ms.tokens[i].Add(v)
		in.userTokens(us, tier).Add(v)
		// LiteLLM's history before the first scrape has no period to go to:
		// the ledger takes what it counts from then on.
		if k.User != "" && !ch.First {
			in.countUsage([]byte(k.User), now, 0, int64(math.Round(v)))
		}
	}
	for k, v := range ch.Requests {
		ms := in.model([]byte(k.Model))
		if k.Status == "success" {
			ms.success.Add(v)
		} else {
			ms.failure.Add(v)
		}
	}
}

func labelCounter(cache map[string]prometheus.Counter, vec *prometheus.CounterVec, value string) prometheus.Counter {
	c, ok := cache[value]
	if !ok {
		c = vec.WithLabelValues(value)
		cache[value] = c
	}
	return c
}
