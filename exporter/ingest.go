package exporter

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/rollup"
	"github.com/usage-exporter/usage-exporter/exporter/series"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// ingester is the second goroutine of the push path: it runs each decoded
// request through the classify-and-price, count and ledger stages, and
// keeps what a checkpoint needs: the read positions and LiteLLM's counters
// as applied. Not safe for concurrent use.
type ingester struct {
	attr    *attributor
	count   *counter
	ledger  *usageLedger
	sources []*sourceState
	// positions holds the position after the last processed batch of each file.
	positions map[tailer.FileID]tailer.Position
	// firstTimes and lastTimes are the oldest and newest line times the
	// counters hold, by source path.
	firstTimes, lastTimes map[string]float64
	// procs holds LiteLLM's counters as last applied, per process, to take
	// deltas from.
	procs      *litellm.Processes
	spendFrom  bool // LiteLLM is the source of model spend
	llmService int  // the api_service LiteLLM's spend goes to
	litellmM   litellmMetrics
	rollups    *rollup.Rollups // nil when off
	// cfgUsers are plans.users' tiers by stored id, for the quota view.
	cfgUsers map[string]int
	view     *quotaView // the last built
	// changed: something to checkpoint since the last snapshot (lines,
	// LiteLLM baselines); period is the billing period of that snapshot.
	changed bool
	period  string
}

// litellmMetrics are the ingest side's LiteLLM series.
type litellmMetrics struct {
	restarts, resets prometheus.Counter
	processes        prometheus.Gauge
}

type sourceState struct {
	path      string
	parsed    *series.Series
	invalid   *series.Series
	filtered  *series.Series
	errors    [logparse.NumReasons]*series.Series
	lastTime  prometheus.Gauge
	firstTime prometheus.Gauge
}

// newIngester builds the stages of cfg and continues from what the last
// pipeline (or the state file) left.
func newIngester(cfg *Config, m *Metrics, prices *pricing.Table, tiers *plans.Resolver, store quota.Store,
	st carried, now func() time.Time) (*ingester, error) {
	attr, err := newAttributor(cfg, m, prices, tiers, st.users, st.orgs)
	if err != nil {
		return nil, err
	}
	attr.now = now
	st.retier(tiers)
	ledger, err := newUsageLedger(cfg.Quota, store, now, st.tierOf)
	if err != nil {
		return nil, err
	}
	in := &ingester{attr: attr, count: newCounter(cfg, m, attr), ledger: ledger,
		positions: map[tailer.FileID]tailer.Position{}, firstTimes: st.firstTimes, lastTimes: st.lastTimes,
		procs: st.litellm, spendFrom: cfg.LiteLLM.Spend,
		litellmM: litellmMetrics{restarts: m.litellmRestarts, resets: m.litellmResets, processes: m.litellmProcesses}}
	if in.procs == nil {
		in.procs = litellm.NewProcesses(0)
	}
	in.changed = st.rewrite
	in.cfgUsers = map[string]int{}
	tiers.Configured(func(user string, tier int) { in.cfgUsers[storedIDOf(cfg.Users, user)] = tier })
	in.rollups = st.rollups
	in.count.rollups = newRollupIDs(st.rollups, attr.classifier.Services(), tiers.Names())
	in.procs.Retention = cfg.LiteLLM.ProcessRetention
	if st.legacy {
		in.procs.Rebaseline()
	}
	if in.firstTimes == nil {
		in.firstTimes = map[string]float64{}
	}
	if in.lastTimes == nil {
		in.lastTimes = map[string]float64{}
	}
	for i, name := range attr.classifier.Services() {
		if name == cfg.LiteLLM.APIService {
			in.llmService = i
		}
	}
	for _, src := range cfg.Logs.Sources {
		m.initSource(src.Path)
		ss := &sourceState{
			path:      src.Path,
			parsed:    m.logLines.With(src.Path, resultParsed),
			invalid:   m.logLines.With(src.Path, resultInvalid),
			filtered:  m.logLines.With(src.Path, resultFiltered),
			lastTime:  m.logLastTime.WithLabelValues(src.Path),
			firstTime: m.logFirstTime.WithLabelValues(src.Path),
		}
		for r, reason := range logparse.Reasons {
			ss.errors[r] = m.logLineErrors.With(src.Path, string(reason))
		}
		if t, ok := in.firstTimes[src.Path]; ok {
			ss.firstTime.Set(t)
		}
		if t, ok := in.lastTimes[src.Path]; ok {
			ss.lastTime.Set(t)
		}
		in.sources = append(in.sources, ss)
	}
	// Positions of files no longer configured are kept, so that putting a
	// source back resumes it.
	for _, p := range st.positions {
		in.positions[p.FileID] = p
	}
	return in, nil
}

// ingest applies a decoded batch and records its end position.
func (in *ingester) ingest(eb *eventBatch) {
	in.changed = true
	filtered := 0
	var c call
	for i := range eb.events {
		ev := &eb.events[i]
		if !in.attr.attribute(eb, ev, &c) {
			filtered++
			continue
		}
		in.count.count(&c, ev)
		if c.stored != "" {
			in.ledger.add(c.stored, c.tier, c.at, 1, c.tokens)
		}
	}
	src := in.sources[eb.source]
	src.parsed.Add(float64(len(eb.events) - filtered))
	src.invalid.Add(float64(eb.invalid))
	for r, n := range eb.reasons {
		if n > 0 {
			src.errors[r].Add(float64(n))
		}
	}
	src.filtered.Add(float64(filtered))
	if eb.newest > in.lastTimes[src.path] {
		in.lastTimes[src.path] = eb.newest
		src.lastTime.Set(eb.newest)
	}
	if first, ok := in.firstTimes[src.path]; eb.oldest != 0 && (!ok || eb.oldest < first) {
		in.firstTimes[src.path] = eb.oldest
		src.firstTime.Set(eb.oldest)
	}
	if eb.retire {
		delete(in.positions, eb.pos.FileID)
	} else {
		in.positions[eb.pos.FileID] = eb.pos
	}
	if d := in.attr.dups; d != nil && d.Evicted > 0 {
		in.count.m.dedupEvictions.With().Add(float64(d.Evicted))
		d.Evicted = 0
	}
}

// dirty reports whether a checkpoint would hold anything the last one did
// not: lines or LiteLLM counts applied, a new billing period (the quota
// view changes), series a scrape has seen at zero to release, or a shared
// ledger's counts to cut into a batch. Idle, the state file is left alone.
func (in *ingester) dirty() bool {
	return in.changed || in.ledger.current().ID != in.period || in.count.m.Lines.Releasable() || in.ledger.store.Waiting()
}

// positionList is the read positions, sorted for a stable state file.
func (in *ingester) positionList() []tailer.Position {
	out := make([]tailer.Position, 0, len(in.positions))
	for _, p := range in.positions {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Ino < out[j].Ino
	})
	return out
}
