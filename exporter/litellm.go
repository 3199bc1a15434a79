package exporter

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/litellm"
)

// applyLiteLLM turns a LiteLLM scrape into increments of the same series
// the logs feed: the delta from the counters last applied, a LiteLLM restart
// counting from zero. The counters applied are kept, and checkpointed, so a
// repeated scrape adds nothing and an exporter restart adds only what is new.
func (in *ingester) applyLiteLLM(snap *litellm.Snapshot, now time.Time) {
	cur := snap.Counters()
	ch := litellm.Delta(in.litellm, cur)
	in.litellm = litellm.Advance(in.litellm, cur)
	if ch.Restarted {
		in.restarts.Inc()
	}
	if !in.spendFrom {
		return
	}
	a, c, svc := in.attr, in.count, in.llmService
	for k, v := range ch.Spend {
		ms := c.model(a.models.index([]byte(k.Model)))
		slot, tier := a.user([]byte(k.User), nil)
		c.modelCost(ms, svc).Add(v)
		c.userCost(c.user(slot), tier, svc).Add(v)
		if k.Team != "" {
			labelCounter(c.teams, c.m.teamCost, k.Team).Add(v)
		}
		if k.Key != "" {
			labelCounter(c.keys, c.m.keyCost, k.Key).Add(v)
		}
	}
	for k, v := range ch.Tokens {
		ms := c.model(a.models.index([]byte(k.Model)))
		slot, tier := a.user([]byte(k.User), nil)
		d := 0 // input
		if k.Direction == "output" {
			d = 1
		}
		ms.tokens[d].Add(v)
		c.userTokens(c.user(slot), tier).Add(v)
		// LiteLLM's history before the first scrape has no period to go to:
		// the ledger takes what it counts from then on.
		if k.User != "" && !ch.First {
			in.ledger.add([]byte(k.User), tier, now, 0, int64(math.Round(v)))
		}
	}
	for k, v := range ch.Requests {
		ms := c.model(a.models.index([]byte(k.Model)))
		if k.Status == "success" {
			ms.success.Add(v)
		} else {
			ms.failure.Add(v)
		}
	}
}

// pollLiteLLM scrapes LiteLLM on its own interval and hands each good
// scrape to the ingest loop, the latest replacing one not yet taken: the
// deltas are taken there, so none is lost. A failure is logged once per
// change of state, sets usage_exporter_litellm_up to 0, and withdraws the
// re-exported LiteLLM series rather than serving stale ones.
func pollLiteLLM(ctx context.Context, c *litellm.Client, every time.Duration, out chan *litellm.Snapshot,
	m *Metrics, latest *litellmCollector, log *slog.Logger) {
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
		snap, err := c.Fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		m.litellmDuration.Set(time.Since(start).Seconds())
		if err != nil {
			m.litellmUp.Set(0)
			latest.set(nil)
			if state != 0 {
				log.Warn("LiteLLM scrape failed", "url", c.URL(), "err", err)
			}
			state = 0
		} else {
			m.litellmUp.Set(1)
			m.litellmLastSuccess.SetToCurrentTime()
			latest.set(snap)
			if state == 0 {
				log.Info("LiteLLM scrape succeeded again", "url", c.URL())
			}
			state = 1
			offerLatest(out, snap)
		}
		timer.Reset(every)
	}
}

// offerLatest puts v on a channel of one, replacing a value not yet taken.
// The sender is the channel's only writer.
func offerLatest[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
		select {
		case <-ch:
		default:
		}
		ch <- v
	}
}
