// Package exporter wires the data path of usage-exporter: log files are
// tailed, each line is parsed into a record, classified, and turned into
// metric updates, and the series are served over HTTP. It is the only
// package that imports the leaf packages (logparse, classify, tailer, ...).
package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/usage-exporter/usage-exporter/exporter/admin"
	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/pricing"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/state"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
)

// Options are the process-level settings of Run, mostly from flags.
type Options struct {
	Config *Config
	// ConfigFile is re-read on reload; empty means reloads keep Config.
	ConfigFile string
	// Overrides re-applies command-line flags to a reloaded file.
	Overrides func(*Config)
	// StateDir holds the checkpoint file.
	StateDir      string
	TelemetryPath string
	Web           *web.FlagConfig
	// Listeners, when set, are served instead of Web.WebListenAddresses (tests).
	Listeners []net.Listener
	Logger    *slog.Logger
	// Registry receives the metrics; a new one when nil.
	Registry *prometheus.Registry
	// Reload delivers reload requests (SIGHUP).
	Reload <-chan struct{}
}

const checkpointFile = "checkpoint.json"

// checkpoint is the state file: where every file was read to.
type checkpoint struct {
	Version   int               `json:"version"`
	Written   time.Time         `json:"written"`
	Positions []tailer.Position `json:"positions"`
	// LiteLLM holds its counters as last applied, so that a restart adds
	// only what LiteLLM counted since.
	LiteLLM *litellm.Counters `json:"litellm,omitempty"`
	// Ledger holds the usage ledger; with Redis, the counts not yet committed.
	Ledger *quota.Ledger `json:"ledger,omitempty"`
	// Redis is how far the commits to Redis have gone.
	Redis *redisProgress `json:"redis,omitempty"`
}

// carried is what one pipeline hands to the next, and what a checkpoint holds.
type carried struct {
	positions []tailer.Position
	litellm   *litellm.Counters
	ledger    *quota.Ledger
	progress  redisProgress
}

func (cp *checkpoint) carried() carried {
	c := carried{positions: cp.Positions, ledger: cp.Ledger}
	if cp.LiteLLM != nil {
		c.litellm = cp.LiteLLM.Decode()
	}
	if cp.Redis != nil {
		c.progress = *cp.Redis
	}
	return c
}

// Run serves metrics and ingests logs until ctx ends, then writes the final
// checkpoint. Configuration errors are returned before anything starts.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if opts.Web != nil && opts.Web.WebConfigFile != nil && *opts.Web.WebConfigFile != "" {
		if err := web.Validate(*opts.Web.WebConfigFile); err != nil {
			return fmt.Errorf("web configuration %s: %w", *opts.Web.WebConfigFile, err)
		}
	}
	dir, err := state.Open(opts.StateDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	var cp checkpoint
	if _, err := dir.Read(checkpointFile, &cp); err != nil {
		return fmt.Errorf("reading checkpoint: %w", err)
	}

	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("usage_exporter"),
	)
	m := NewMetrics(reg, cfg.Metrics)
	prices, err := pricing.Load(cfg.Pricing)
	if err != nil {
		return fmt.Errorf("pricing: %w", err)
	}
	m.setPriceTable(prices)

	var ready atomic.Bool
	reloads := make(chan chan error)
	httpErr, shutdown, err := admin.Serve(opts.Listeners, newMux(reg, m, opts, log, &ready, reloads), opts.Web, log)
	if err != nil {
		return err
	}
	defer shutdown()

	state := cp.carried()
	var shared *sharedLedger
	if cfg.Redis.Enabled() {
		if shared, err = openShared(ctx, cfg.Redis, opts.StateDir, m, log); err != nil {
			return err
		}
		defer shared.redis.Close()
		state = shared.reconcile(ctx, state, log)
	}
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
	var reloaded chan error // answered once the reloaded pipeline runs
	for {
		pctx, stop := context.WithCancel(ctx)
		if next := cfg.Redis.URL; shared != nil && next != shared.url || shared == nil && next != "" {
			log.Warn("redis.url changed: it takes effect at the next restart")
		}
		p, err := startPipeline(pctx, cfg, prices, m, log, dir, state, shared)
		if reloaded != nil {
			reloaded <- err
		}
		if err != nil {
			stop()
			return err
		}
		ready.Store(true)
		var next *loaded
		next, reloaded, err = waitForReload(ctx, opts, log, reloads, httpErr, m)
		stop()
		state = p.wait()
		if next == nil {
			return err
		}
		cfg, prices = next.cfg, next.prices
	}
}

// loaded is a configuration with its price table.
type loaded struct {
	cfg    *Config
	prices *pricing.Table
}

// waitForReload returns the next configuration to run, or nil (and the
// reason) when Run must end. A reload that fails keeps the running pipeline
// and is answered at once; a good one returns the channel (of POST
// /-/reload) to answer once the next pipeline runs, so that "Reloaded"
// means lines read from then on use the new configuration.
func waitForReload(ctx context.Context, opts Options, log *slog.Logger, reloads chan chan error,
	httpErr <-chan error, m *Metrics) (*loaded, chan error, error) {
	for {
		var reply chan error
		select {
		case <-ctx.Done():
			return nil, nil, nil
		case err := <-httpErr:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			return nil, nil, err
		case <-opts.Reload:
		case reply = <-reloads:
		}
		next, err := reloadConfig(opts, m)
		if err != nil {
			m.reloadOK.Set(0)
			log.Error("configuration reload failed; the running configuration and price table stay", "err", err)
		} else {
			m.reloadOK.Set(1)
			m.reloadTime.SetToCurrentTime()
			m.setPriceTable(next.prices)
			log.Info("configuration reloaded", "price_models", next.prices.Len())
		}
		if err == nil {
			return next, reply, nil
		}
		if reply != nil {
			reply <- err
		}
	}
}

// reloadConfig reads the configuration file and the price files again.
func reloadConfig(opts Options, m *Metrics) (*loaded, error) {
	c := opts.Config
	if opts.ConfigFile != "" {
		var err error
		if c, err = LoadConfig(opts.ConfigFile); err != nil {
			return nil, err
		}
		if opts.Overrides != nil {
			opts.Overrides(c)
			if err := c.Validate(); err != nil {
				return nil, err
			}
		}
	}
	prices, err := pricing.Load(c.Pricing)
	if err != nil {
		m.priceLoadOK.Set(0)
		return nil, fmt.Errorf("pricing: %w", err)
	}
	return &loaded{cfg: c, prices: prices}, nil
}

// pipeline is a tailer feeding an ingester, with periodic checkpoints.
type pipeline struct {
	in   *ingester
	done chan struct{}
}

func startPipeline(ctx context.Context, cfg *Config, prices *pricing.Table, m *Metrics, log *slog.Logger,
	dir *state.Dir, state carried, shared *sharedLedger) (*pipeline, error) {
	positions := state.positions
	in, err := newIngester(cfg, m, prices)
	if err != nil {
		return nil, err
	}
	in.litellm = state.litellm
	if state.ledger != nil {
		in.ls.ledger = state.ledger
	}
	in.ls.shared = shared != nil
	in.ls.progress = state.progress
	qs := &quotaState{cfg: cfg}
	if shared != nil {
		qs.redis = shared.redis
		if in.ls.progress.Inflight != nil {
			// Sent before the last stop and not acknowledged: send it again
			// (Redis applies a batch number once).
			in.ls.lastState = in.ls.progress.Inflight.State
		}
	}
	in.quota = qs
	in.publishQuota(qs)
	m.quotaCollector.state.Store(qs)
	var snaps chan *litellm.Snapshot
	var client *litellm.Client
	if cfg.LiteLLM.Enabled() {
		if client, err = litellm.NewClient(cfg.LiteLLM.Config); err != nil {
			return nil, fmt.Errorf("litellm: %w", err)
		}
		m.enableLiteLLM()
		snaps = make(chan *litellm.Snapshot, 1)
	}
	d, err := newDecoder(cfg, m, in.classifier.Services(), log.With("component", "ingest"))
	if err != nil {
		return nil, err
	}
	// Positions of files no longer configured are kept, so that putting a
	// source back resumes it.
	for _, p := range positions {
		in.positions[p.FileID] = p
	}
	sources := make([]string, len(cfg.Logs.Sources))
	for i, s := range cfg.Logs.Sources {
		sources[i] = s.Path
	}
	t, err := tailer.New(cfg.Logs.Config, sources, positions, log.With("component", "tailer"))
	if err != nil {
		return nil, err
	}
	m.tailers.attach(t)
	p := &pipeline{in: in, done: make(chan struct{})}
	events := make(chan *eventBatch, 4)
	go t.Run(ctx)
	go decodeLoop(t, d, events)
	if client != nil {
		go pollLiteLLM(ctx, client, cfg.LiteLLM.Interval, snaps, m, log.With("component", "litellm"))
	}
	var sh *shipper
	if shared != nil {
		sh = shared.start(ctx, cfg, in, log.With("component", "ledger"))
	}
	go func() {
		p.loop(events, snaps, sh, m, log, dir, cfg.Logs.CheckpointInterval)
		m.tailers.detach(t)
		close(p.done)
	}()
	return p, nil
}

// decodeLoop is the first stage: tailer batches in, decoded batches out.
// It ends when the tailer closes its channel.
func decodeLoop(t *tailer.Tailer, d *decoder, out chan<- *eventBatch) {
	defer close(out)
	for b := range t.Batches() {
		eb := d.decode(b)
		t.Release(b)
		out <- eb
	}
}

// loop is the second stage: it applies decoded batches until the decoder
// closes its channel, checkpointing on an interval and once more at the end.
func (p *pipeline) loop(events <-chan *eventBatch, snaps <-chan *litellm.Snapshot, sh *shipper, m *Metrics,
	log *slog.Logger, dir *state.Dir, every time.Duration) {
	saves := make(chan []byte, 1)
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		for data := range saves {
			saveCheckpoint(dir, data, m, log)
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	publish := time.NewTicker(quotaPublishInterval)
	defer publish.Stop()
	var flush <-chan time.Time
	var acks <-chan *commitJob
	if sh != nil {
		flush, acks = sh.flush.C, sh.acks
		defer sh.flush.Stop()
	}
	paused := false
	for events != nil {
		in := events
		// With Redis unreachable and max_pending entries held, stop reading:
		// lines wait in the log files, nothing is dropped.
		if sh != nil && p.in.ls.ledger.Len() >= sh.maxPending {
			if !paused {
				m.ledgerPaused.Inc()
				log.Warn("redis.max_pending ledger entries held while Redis is unreachable: reading logs pauses until it returns")
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
		case snap := <-snaps:
			p.in.applyLiteLLM(snap)
		case job := <-acks:
			p.in.committed(job)
			m.ledgerPending.Set(float64(p.in.ls.ledger.Len()))
		case <-flush:
			if job := p.in.cut(); job != nil {
				sh.jobs <- job
			}
			m.ledgerPending.Set(float64(p.in.ls.ledger.Len()))
		case <-publish.C:
			p.in.publishQuota(p.in.quota)
		case <-tick.C:
			// Latest wins: a slow disk delays checkpoints, never ingestion.
			data := p.in.checkpoint()
			select {
			case saves <- data:
			default:
				select {
				case <-saves:
				default:
				}
				saves <- data
			}
		}
	}
	if sh != nil {
		sh.finish(p.in)
	}
	p.in.publishQuota(p.in.quota)
	close(saves)
	writer.Wait()
	saveCheckpoint(dir, p.in.checkpoint(), m, log)
}

// wait blocks until the pipeline has stopped and returns what the next one
// continues from.
func (p *pipeline) wait() carried {
	<-p.done
	return carried{positions: p.in.positionList(), litellm: p.in.litellm, ledger: p.in.ls.ledger, progress: p.in.ls.progress}
}

func saveCheckpoint(dir *state.Dir, data []byte, m *Metrics, log *slog.Logger) {
	if err := dir.WriteBytes(checkpointFile, data); err != nil {
		m.checkpointFails.Inc()
		log.Error("writing checkpoint failed", "dir", dir.Path(), "err", err)
		return
	}
	m.checkpointOK.SetToCurrentTime()
}

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

func (in *ingester) checkpoint() []byte {
	cp := checkpoint{Version: 1, Written: in.now().UTC(), Positions: in.positionList(), Ledger: in.ls.ledger}
	if in.litellm != nil {
		cp.LiteLLM = in.litellm.Encode()
	}
	if in.ls.shared {
		cp.Redis = &in.ls.progress
	}
	data, _ := json.Marshal(cp)
	return data
}

func newMux(reg *prometheus.Registry, m *Metrics, opts Options, log *slog.Logger, ready *atomic.Bool,
	reloads chan chan error) *http.ServeMux {
	path := opts.TelemetryPath
	if path == "" {
		path = "/metrics"
	}
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		Registry:          reg,
	})
	mux.Handle(path, promhttp.InstrumentMetricHandler(reg, metrics))
	mux.Handle("/api/v1/quotas", quotaHandler(&m.quotaCollector))
	admin.Handle(mux, func() error {
		if !ready.Load() {
			return errors.New("starting")
		}
		return nil
	}, reloads)
	if path != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "usage-exporter",
			Description: "API usage, cost and latency from gateway access logs",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: path, Text: "Metrics"},
				{Address: "/-/healthy", Text: "Health"},
				{Address: "/-/ready", Text: "Readiness"},
				{Address: "/api/v1/quotas?user=", Text: "Quota of a user", Description: "add the user id"},
			},
		})
		if err == nil {
			mux.Handle("/", landing)
		}
	}
	return mux
}

// pollLiteLLM scrapes LiteLLM on its own interval and hands each good
// scrape to the ingest loop, the latest replacing one not yet taken: the
// deltas are taken there, so none is lost. A failure is logged once per
// change of state, sets usage_exporter_litellm_up to 0, and withdraws the
// re-exported LiteLLM series rather than serving stale ones.
func pollLiteLLM(ctx context.Context, c *litellm.Client, every time.Duration, out chan *litellm.Snapshot,
	m *Metrics, log *slog.Logger) {
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
			m.litellm.set(nil)
			if state != 0 {
				log.Warn("LiteLLM scrape failed", "url", c.URL(), "err", err)
			}
			state = 0
		} else {
			m.litellmUp.Set(1)
			m.litellmLastSuccess.SetToCurrentTime()
			m.litellm.set(snap)
			if state == 0 {
				log.Info("LiteLLM scrape succeeded again", "url", c.URL())
			}
			state = 1
			select {
			case out <- snap:
			default:
				select {
				case <-out:
				default:
				}
				out <- snap
			}
		}
		timer.Reset(every)
	}
}
