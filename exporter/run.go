package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/rollup"
	"github.com/usage-exporter/usage-exporter/exporter/state"
	"github.com/usage-exporter/usage-exporter/exporter/storage"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/internal/auth"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
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
	// Listeners, when set, are served instead of what Web names (tests).
	Listeners []net.Listener
	Logger    *slog.Logger
	// KeycloakTick, when set, says when Keycloak's users are read again
	// (tests); otherwise every keycloak.refresh.
	KeycloakTick <-chan time.Time
	// StorageTick, when set, says when storage is measured again (tests);
	// otherwise every storage.interval.
	StorageTick <-chan time.Time
	// AuthClient reaches the API token issuer (tests: its httptest client);
	// http.DefaultClient when nil.
	AuthClient *http.Client
	// Now is the clock (the billing period, the bounds of line times, new
	// series' creation); time.Now when nil.
	Now func() time.Time
	// Reload delivers reload requests (SIGHUP).
	Reload <-chan struct{}
	// Resolver looks up dns+ LiteLLM targets; net.DefaultResolver when nil.
	Resolver litellm.Resolver
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
	if err := auth.CheckWebConfig(opts.Web, cfg.Auth); err != nil {
		return err
	}
	dir, err := state.Open(opts.StateDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	cp, lines, err := readState(dir)
	if err != nil {
		return fmt.Errorf("reading checkpoint: %w", err)
	}

	// The process's metrics go to reg, which /metrics gathers; the lines'
	// series and the quota gauges are written beside them.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("usage_exporter"),
	)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m := NewMetrics(reg, cfg.Metrics, now)
	if lines != nil {
		r, err := m.Lines.Restore(lines)
		if err != nil {
			return fmt.Errorf("restoring the counters of %s: %w", dir.File(stateFile), err)
		}
		log.Info("counters restored from the state file", "series", r.Series)
		if len(r.Skipped) > 0 {
			log.Warn("series of the state file no longer configured this way start from zero", "families", r.Skipped)
		}
	}
	m.initLines()
	// What the state file holds is durable: serve it at once.
	m.Lines.Publish(m.Lines.Snapshot())
	prices, err := pricing.Load(cfg.Pricing)
	if err != nil {
		return fmt.Errorf("pricing: %w", err)
	}
	m.setPriceTable(prices)
	pr := &process{now: now, log: log, m: m, dir: dir, tailers: &tailerCollector{}, litellm: newLiteLLMCollector(now),
		resolver: opts.Resolver}
	if pr.resolver == nil {
		pr.resolver = net.DefaultResolver
	}
	reg.MustRegister(pr.tailers, pr.litellm)

	// The ledger outlives pipelines; with Redis it commits until the last
	// pipeline has drained, after ctx ends.
	ledgerCtx, stopLedger := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLedger()
	st, err := cp.carried()
	if err != nil {
		log.Warn("LiteLLM's baselines in the state file are unreadable: the next scrape of each LiteLLM process counts all it has",
			"file", dir.File(stateFile), "err", err)
	}
	relabel := restoreUserState(&cp, &st, cfg.Users, m, log, dir.File(stateFile))
	restoreOrgs(&cp, &st, cfg.Orgs, m, log, dir.File(stateFile))
	if st.users.denied, _, err = readDenied(dir); err != nil {
		return err
	}
	if cfg.Rollups.Days > 0 {
		if pr.rollups, err = openRollups(cfg.Rollups.Days, dir, cp.Rollups, relabel); err != nil {
			return fmt.Errorf("restoring the rollups of %s: %w", dir.File(stateFile), err)
		}
		st.rollups = pr.rollups
	}
	closeLedger, err := pr.openLedger(ctx, ledgerCtx, cfg, opts.StateDir, &cp.Saved, &st)
	if err != nil {
		return err
	}
	defer closeLedger()
	pr.quotas = newQuotas(pr.store, cfg, now)
	if cfg.Keycloak.Enabled() {
		// Read in the background: until the first read the other tier
		// sources answer; a failure is keycloak_up 0 and a log line.
		if pr.keycloak, err = plans.StartKeycloak(ctx, cfg.Keycloak, reg, "usage_exporter", log.With("component", "keycloak"),
			opts.KeycloakTick); err != nil {
			return err
		}
	}

	var ready atomic.Bool
	reloads := make(chan chan error)
	guard := auth.NewReloadable(cfg.Auth, opts.AuthClient, opts.Now, log)
	// Storage is measured on its own interval, never per scrape; its
	// configuration takes effect at a restart.
	var stored *storage.Measurer
	if cfg.Storage.Enabled() {
		stored = storage.New(cfg.Storage, cfg.Pricing.StoragePerGBMonth, now, log.With("component", "storage"))
		reg.MustRegister(stored)
		go stored.Run(ctx, opts.StorageTick)
	}
	httpErr, shutdown := admin.Serve(opts.Listeners,
		newMux(reg, reg, m.Lines, pr.quotas, windowHandler{pr.rollups, stored, log}, guard, opts, log, &ready, reloads), opts.Web, log)
	defer shutdown()

	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
	redisURL, idPolicy := cfg.Redis.URL, cfg.Users
	var reloaded chan error // answered once the reloaded pipeline runs
	for {
		if cfg.Redis.URL != redisURL {
			log.Warn("redis.url changed: it takes effect at the next restart")
		}
		if cfg.Users.Label != idPolicy.Label || cfg.Users.HashKey != idPolicy.HashKey {
			// The ledger's ids follow the policy: it changes with the state file, at a restart.
			log.Warn("users.label or users.hash_key changed: it takes effect at the next restart")
			cfg.Users.Label, cfg.Users.HashKey = idPolicy.Label, idPolicy.HashKey
		}
		pctx, stop := context.WithCancel(ctx)
		p, err := pr.start(pctx, cfg, prices, st)
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
		st = p.wait()
		if next == nil {
			return err
		}
		cfg, prices = next.cfg, next.prices
		guard.Set(cfg.Auth)
	}
}

// openLedger opens the quota store of cfg: embedded in the state file, or
// shared in Redis (with, when configured, the Redis tier source). It
// returns what closes it.
func (pr *process) openLedger(ctx, ledgerCtx context.Context, cfg *Config, stateDir string, saved *quota.Saved,
	st *carried) (func(), error) {
	if !cfg.Redis.Enabled() {
		pr.store = quota.NewEmbedded(saved)
		return func() {}, nil
	}
	client, err := quota.NewClient(cfg.Redis.URL, cfg.Redis.Timeout)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	instance := cfg.Redis.Instance
	if instance == "" {
		instance = defaultInstance(stateDir)
	}
	pr.m.enableRedis()
	log := pr.log.With("component", "ledger")
	shared, resume := quota.OpenShared(ctx, quota.NewRedis(client, cfg.Redis.RedisConfig), instance, saved,
		cfg.Redis.MaxPending, pr.m.sharedLedger(), log)
	if resume != nil {
		if err := st.resumeFrom(resume); err != nil {
			log.Error("Redis checkpoint unreadable; continuing from the state file", "err", err)
		}
	}
	shared.Start(ledgerCtx)
	pr.store = shared
	log.Info("ledger shared in Redis", "instance", instance)
	if slices.Contains(cfg.Quota.TierSources, plans.SourceRedis) {
		pr.redisTiers = plans.NewRedisTiers(client, cfg.Redis.Tiers, cfg.Redis.Timeout, log)
		go pr.redisTiers.Run(ctx)
	}
	if pr.rollups == nil {
		return func() { client.Close() }, nil
	}
	pr.rollups.Share(rollup.NewShare(client, cfg.Redis.KeyPrefix, instance, cfg.Redis.Timeout, cfg.Rollups.Days))
	pushCtx, stopPush := context.WithCancel(context.WithoutCancel(ctx))
	pushed := make(chan struct{})
	go func() {
		defer close(pushed)
		pr.pushRollups(pushCtx, cfg.Rollups.PushInterval, pr.log.With("component", "rollups"))
	}()
	return func() {
		// The last checkpoint is saved: put it before letting go of Redis.
		stopPush()
		<-pushed
		final, cancel := context.WithTimeout(context.Background(), cfg.Redis.Timeout)
		defer cancel()
		if err := pr.rollups.Push(final); err != nil {
			pr.log.Warn("putting the rollups in Redis at shutdown failed; the next start puts them", "err", err)
		}
		client.Close()
	}, nil
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
