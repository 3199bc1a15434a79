package exporter

import (
	"cmp"
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/rollup"
)

// litellmScrape is one good scrape of one LiteLLM endpoint.
type litellmScrape struct {
	target, endpoint string
	snap             *litellm.Snapshot
}

// tokenDirection indexes usage_llm_tokens_total's directions.
var tokenDirection = func() map[string]int {
	m := map[string]int{}
	for i, d := range tokenDirections {
		m[d] = i
	}
	return m
}()

// applyLiteLLM turns a LiteLLM scrape into increments of the same series
// the logs feed: per process and per series, the delta from what was last
// applied (litellm.Processes). The baselines are checkpointed, so a
// repeated scrape adds nothing and an exporter restart adds only what is new.
func (in *ingester) applyLiteLLM(sc litellmScrape, now time.Time) {
	a := in.procs.Apply(sc.target, sc.endpoint, sc.snap, now)
	in.changed = in.changed || a.Changed
	if a.NewProcess {
		in.litellmM.restarts.Inc()
	}
	in.litellmM.resets.Add(float64(a.Resets))
	in.litellmM.processes.Set(float64(in.procs.Count()))
	if !in.spendFrom || a.Usage.Empty() {
		return
	}
	u := a.Usage.Resolve()
	att, c, svc := in.attr, in.count, in.llmService
	roll := func(ms *modelSeries, slot, tier int, userHash uint64, f func(*rollup.Usage)) {
		if c.rollups == nil {
			return
		}
		r := c.rollups.r
		us := c.user(slot)
		if us.rollup < 0 {
			us.rollup = r.UserID(us.label)
		}
		x := rollup.Usage{Time: now.UnixMilli(), Service: c.rollups.services[svc], Model: ms.rollupID(r, svc, c.services[svc].name),
			Tier: c.rollups.tiers[tier], User: us.rollup, UserHash: userHash}
		f(&x)
		r.AddLiteLLM(&x)
	}
	var cl call
	for k, v := range u.Spend {
		ms := c.model(att.models.index([]byte(k.Model)))
		att.user(&cl, []byte(k.User), nil, 0)
		slot, tier := cl.user, cl.tier
		c.modelCost(ms, svc).Add(v)
		c.userCost(c.user(slot), tier, svc).Add(v)
		roll(ms, slot, tier, cl.userHash, func(x *rollup.Usage) { x.Cost = v })
		if k.Team != "" {
			labelCounter(c.teams, c.m.teamCost, k.Team).Add(v)
		}
		if k.Org != "" {
			c.orgAdd(att.org([]byte(k.Org), 1), svc, orgCost, v)
		}
		if k.Key != "" {
			labelCounter(c.keys, c.m.keyCost, k.Key).Add(v)
		}
	}
	for k, v := range u.Tokens {
		ms := c.model(att.models.index([]byte(k.Model)))
		att.user(&cl, []byte(k.User), nil, 0)
		slot, tier := cl.user, cl.tier
		ms.tokens[tokenDirection[k.Direction]].Add(v)
		c.userTokens(c.user(slot), tier).Add(v)
		roll(ms, slot, tier, cl.userHash, func(x *rollup.Usage) { x.Tokens[tokenDirection[k.Direction]] = v })
		// LiteLLM's history before the first scrape has no period to go to:
		// the ledger takes what it counts from then on.
		if cl.stored != "" && !a.First {
			in.ledger.add(cl.stored, tier, now, 0, int64(math.Round(v)))
		}
	}
	for k, v := range u.Requests {
		ms := c.model(att.models.index([]byte(k.Model)))
		failed := 0.0
		if k.Status == "success" {
			ms.success.Add(v)
		} else {
			ms.failure.Add(v)
			failed = v
		}
		roll(ms, userAnonymous, att.tiers.Anonymous(), 0, func(x *rollup.Usage) { x.Calls, x.Failures, x.User = v, failed, -1 })
	}
}

// scrapeQueue hands the ingest loop the latest good scrape of each
// endpoint. A newer scrape replaces one not yet taken: the deltas are taken
// there, from cumulative counters, so none is lost.
type scrapeQueue struct {
	mu      sync.Mutex
	pending map[string]litellmScrape // by endpoint
	ready   chan struct{}
}

func newScrapeQueue() *scrapeQueue {
	return &scrapeQueue{pending: map[string]litellmScrape{}, ready: make(chan struct{}, 1)}
}

func (q *scrapeQueue) offer(sc litellmScrape) {
	q.mu.Lock()
	q.pending[sc.endpoint] = sc
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the pending scrapes, by endpoint.
func (q *scrapeQueue) take() []litellmScrape {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]litellmScrape, 0, len(q.pending))
	for _, sc := range q.pending {
		out = append(out, sc)
	}
	clear(q.pending)
	slices.SortFunc(out, func(a, b litellmScrape) int { return cmp.Compare(a.endpoint, b.endpoint) })
	return out
}

// litellmPoller scrapes one target: its URL, or every address of its dns+
// name, each endpoint on its own interval.
type litellmPoller struct {
	client   *litellm.Client
	every    time.Duration
	refresh  time.Duration
	resolver litellm.Resolver
	queue    *scrapeQueue
	m        *Metrics
	latest   *litellmCollector
	log      *slog.Logger
}

// run resolves the target's endpoints (again every refresh interval for a
// dns+ target) and keeps one scraping goroutine per endpoint. A failed
// lookup keeps the endpoints it had.
func (p *litellmPoller) run(ctx context.Context) {
	target := p.client.Target()
	running := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range running {
			cancel()
		}
	}()
	failing := false
	for {
		endpoints, err := target.Endpoints(ctx, p.resolver)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.m.litellmDiscovery.WithLabelValues(target.Name).Inc()
			if !failing {
				p.log.Warn("LiteLLM target lookup failed; scraping the endpoints it had", "target", target.Name, "err", err)
			}
			failing = true
		default:
			if failing {
				p.log.Info("LiteLLM target lookup succeeded again", "target", target.Name, "endpoints", len(endpoints))
			}
			failing = false
			for ep, cancel := range running {
				if !slices.Contains(endpoints, ep) {
					cancel()
					delete(running, ep)
					p.forget(target.Name, ep)
				}
			}
			for _, ep := range endpoints {
				if running[ep] == nil {
					epCtx, cancel := context.WithCancel(ctx)
					running[ep] = cancel
					go p.scrape(epCtx, ep)
				}
			}
			p.m.litellmEndpoints.WithLabelValues(target.Name).Set(float64(len(running)))
		}
		if !target.DNS && !failing {
			<-ctx.Done()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.refresh):
		}
	}
}

// forget withdraws an endpoint that DNS no longer returns.
func (p *litellmPoller) forget(target, endpoint string) {
	p.m.litellmUp.DeleteLabelValues(target, endpoint)
	p.m.litellmDuration.DeleteLabelValues(target, endpoint)
	p.m.litellmLastSuccess.DeleteLabelValues(target, endpoint)
	p.latest.fail(endpoint)
}

// scrape polls one endpoint on the interval and hands each good scrape to
// the ingest loop. A failure is logged once per change of state, sets
// usage_exporter_litellm_up to 0, and withdraws the endpoint's re-exported
// LiteLLM series rather than serving stale ones.
func (p *litellmPoller) scrape(ctx context.Context, endpoint string) {
	target := p.client.Target().Name
	up := p.m.litellmUp.WithLabelValues(target, endpoint)
	duration := p.m.litellmDuration.WithLabelValues(target, endpoint)
	last := p.m.litellmLastSuccess.WithLabelValues(target, endpoint)
	state := -1 // unknown, down, up
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		snap, err := p.client.Fetch(ctx, endpoint)
		if ctx.Err() != nil {
			return
		}
		duration.Set(time.Since(start).Seconds())
		if err != nil {
			up.Set(0)
			p.latest.fail(endpoint)
			if state != 0 {
				p.log.Warn("LiteLLM scrape failed", "target", target, "endpoint", endpoint, "err", err)
			}
			state = 0
		} else {
			up.Set(1)
			last.SetToCurrentTime()
			p.latest.set(endpoint, snap)
			if state == 0 {
				p.log.Info("LiteLLM scrape succeeded again", "target", target, "endpoint", endpoint)
			}
			state = 1
			p.queue.offer(litellmScrape{target: target, endpoint: endpoint, snap: snap})
		}
		timer.Reset(p.every)
	}
}

// offerLatest puts v on a channel of one, replacing a value not yet taken.
// The sender is the channel's only writer.
func offerLatest[T any](ch chan T, v T) (replaced bool) {
	select {
	case ch <- v:
	default:
		select {
		case <-ch:
			replaced = true
		default:
		}
		ch <- v
	}
	return replaced
}
