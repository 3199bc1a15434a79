package exporter

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/rollup"
	"github.com/usage-exporter/usage-exporter/exporter/state"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// process is what outlives pipelines: Run sets it up once.
type process struct {
	now        func() time.Time
	log        *slog.Logger
	m          *Metrics
	dir        *state.Dir
	store      quota.Store
	quotas     *quotas
	redisTiers *plans.RedisTiers // nil unless tiers are read from Redis
	keycloak   *plans.Keycloak   // nil unless keycloak.url is set
	tailers    *tailerCollector
	litellm    *litellmCollector
	resolver   litellm.Resolver // DNS of dns+ LiteLLM targets
	rollups    *rollup.Rollups  // nil when off
}

// pipeline is a tailer feeding an ingester, with periodic checkpoints.
type pipeline struct {
	*process
	in          *ingester
	every       time.Duration
	drainWithin time.Duration
	legacyGone  bool // the JSON state file of an older version is removed
	done        chan struct{}
}

// start runs a pipeline of cfg, continuing from st, until ctx ends.
func (pr *process) start(ctx context.Context, cfg *Config, prices *pricing.Table, st carried) (*pipeline, error) {
	lookups := map[string]plans.Lookup{}
	if pr.redisTiers != nil {
		lookups[plans.SourceRedis] = pr.redisTiers
	}
	if pr.keycloak != nil {
		lookups[plans.SourceKeycloak] = pr.keycloak
	}
	resolver := plans.NewResolver(cfg.Plans, cfg.Quota.TierSources, lookups)
	in, err := newIngester(cfg, pr.m, prices, resolver, pr.store, st, pr.now)
	if err != nil {
		return nil, err
	}
	pr.quotas.cfg.Store(cfg)
	in.view = in.quotaView(nil)
	pr.quotas.view.Store(in.view)
	var queue *scrapeQueue
	var pollers []*litellmPoller
	if cfg.LiteLLM.Enabled() {
		queue = newScrapeQueue()
		for _, name := range cfg.LiteLLM.AllTargets() {
			target, err := litellm.ParseTarget(name)
			if err != nil {
				return nil, fmt.Errorf("litellm: %w", err)
			}
			client, err := litellm.NewClient(cfg.LiteLLM.Config, target)
			if err != nil {
				return nil, fmt.Errorf("litellm: %w", err)
			}
			pollers = append(pollers, &litellmPoller{client: client, every: cfg.LiteLLM.Interval,
				refresh: cfg.LiteLLM.RefreshInterval, resolver: pr.resolver, queue: queue, m: pr.m, latest: pr.litellm,
				log: pr.log.With("component", "litellm")})
		}
		pr.m.enableLiteLLM()
		pr.litellm.setStale(cfg.LiteLLM.Interval)
	}
	d, err := newDecoder(cfg, in.attr.classifier.Services(), pr.log.With("component", "ingest"))
	if err != nil {
		return nil, err
	}
	d.now = pr.now
	sources := make([]string, len(cfg.Logs.Sources))
	for i, s := range cfg.Logs.Sources {
		sources[i] = s.Path
	}
	t, err := tailer.New(cfg.Logs.Config, sources, st.positions, pr.log.With("component", "tailer"))
	if err != nil {
		return nil, err
	}
	pr.tailers.attach(t)
	p := &pipeline{process: pr, in: in, every: cfg.checkpointEvery(), drainWithin: cfg.Redis.Timeout + time.Second,
		done: make(chan struct{})}
	events := make(chan *eventBatch, 4)
	go t.Run(ctx)
	go decodeLoop(t, d, events)
	for _, lp := range pollers {
		go lp.run(ctx)
	}
	go func() {
		p.loop(events, queue)
		pr.tailers.detach(t)
		close(p.done)
	}()
	return p, nil
}

// loop applies decoded batches until the decoder closes its channel,
// checkpointing on an interval and once more at the end.
func (p *pipeline) loop(events <-chan *eventBatch, queue *scrapeQueue) {
	var scrapes <-chan struct{}
	if queue != nil {
		scrapes = queue.ready
	}
	saves := make(chan *snapshot, 1)
	var writer sync.WaitGroup
	var writing atomic.Int32 // snapshots offered and not yet saved
	var failed atomic.Bool   // the last write failed: write again
	writer.Add(1)
	go func() {
		defer writer.Done()
		for s := range saves {
			if !p.save(s) {
				failed.Store(true)
			}
			writing.Add(-1)
		}
	}()
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	paused := false
	for events != nil {
		in := events
		// With Redis unreachable and max_pending entries held, stop reading:
		// lines wait in the log files, nothing is dropped.
		if p.store.Full() {
			if !paused {
				p.m.ledgerPaused.Inc()
				p.log.Warn("redis.max_pending ledger entries held while Redis is unreachable: reading logs pauses until it returns")
			}
			paused, in = true, nil
		} else {
			paused = false
		}
		select {
		case eb, ok := <-in:
			if !ok {
				events = nil
				break
			}
			p.in.ingest(eb)
			putEventBatch(eb)
		case <-scrapes:
			for _, sc := range queue.take() {
				p.in.applyLiteLLM(sc, p.now())
			}
		case <-tick.C:
			if !p.in.dirty() && !failed.Swap(false) {
				// The state file holds all there is: nothing to write.
				if writing.Load() == 0 {
					p.m.checkpointOK.SetToCurrentTime()
				}
				break
			}
			// Latest wins: a slow disk delays checkpoints, never ingestion.
			writing.Add(1)
			if offerLatest(saves, p.in.snapshot(p.now())) {
				writing.Add(-1) // it replaced one not yet taken
			}
		}
	}
	close(saves)
	writer.Wait()
	now := p.now()
	last := p.in.snapshot(now)
	p.save(last)
	// What the final checkpoint holds for Redis gets a moment to arrive;
	// the state file records it if it did.
	p.store.Drain(p.drainWithin)
	if again := p.in.snapshot(now); !bytes.Equal(again.data, last.data) {
		p.save(again)
	}
}

// save writes a snapshot to the state file and, once it is there,
// publishes what it holds. It reports whether the write succeeded.
func (p *pipeline) save(s *snapshot) bool {
	if err := p.dir.WriteBytes(stateFile, s.data); err != nil {
		p.m.checkpointFails.Inc()
		p.log.Error("writing checkpoint failed", "dir", p.dir.Path(), "err", err)
		return false
	}
	p.m.checkpointOK.SetToCurrentTime()
	p.m.checkpointBytes.Set(float64(len(s.data)))
	p.store.Saved(s.quota)
	if s.rollups != nil {
		p.in.rollups.Saved(s.rollups)
	}
	p.quotas.view.Store(s.view)
	p.m.Lines.Publish(s.lines)
	p.m.ledgerPending.Set(float64(p.store.Held()))
	if !p.legacyGone {
		if err := p.dir.Remove(legacyStateFile); err == nil {
			p.legacyGone = true
		}
	}
	return true
}

// wait blocks until the pipeline has stopped and returns what the next one
// continues from.
func (p *pipeline) wait() carried {
	<-p.done
	return p.in.carry()
}
