// Command usage-optimizer reads API usage from Prometheus (or the
// exporter's /metrics), decides what would save money, and serves the
// recommendations as series and as the analytics JSON API.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/optimizer"
)

func main() { os.Exit(run()) }

func run() int {
	app := kingpin.New("usage-optimizer", "Cost recommendations from API usage, as Prometheus series and a JSON API.")
	var (
		configFile  = app.Flag("config.file", "Configuration file (YAML): prices, plans and thresholds. Without it, the defaults.").String()
		configCheck = app.Flag("config.check", "Validate the configuration and exit.").Bool()
		webFlags    = kingpinflag.AddFlags(app, ":9817")
		telemetry   = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		promURL     = app.Flag("prometheus.url", "Prometheus (or Thanos, Mimir) HTTP API to read usage from. Without it, --exporter.url is read.").
				String()
		promTimeout = app.Flag("prometheus.timeout", "Timeout of one analysis' queries (or of the exporter scrape).").
				Default("30s").Duration()
		exporterURL = app.Flag("exporter.url", "The exporter's /metrics, read when --prometheus.url is not set: windows of log time from its rollups (/api/v1/window on the same host), quota use from /metrics.").
				Default("http://localhost:9816/metrics").String()
		redisURL = app.Flag("redis.url", "Redis to share cached reports between sidecars, redis://host:port/db. Without it, memory.").
				String()
		days     = app.Flag("analysis.days", "Window of the background analysis, whose recommendations are the series (1-90).").Default("7").Int()
		interval = app.Flag("analysis.interval", "How often the background analysis runs.").Default("5m").Duration()
		ttl      = app.Flag("cache.ttl", "How long a report stays fresh.").Default("5m").Duration()
		maxStale = app.Flag("cache.max-stale", "How long past --cache.ttl a report is still served, marked stale, while the source fails; then 503.").Default("1h").Duration()
		logLevel = app.Flag("log.level", "Only log messages with the given severity or above: debug, info, warn, error.").
				Default("info").Enum("debug", "info", "warn", "error")
	)
	app.Version(version.Print("usage-optimizer"))
	app.HelpFlag.Short('h')
	if _, err := app.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if *days < 1 || *days > optimizer.MaxDays {
		fmt.Fprintf(os.Stderr, "usage-optimizer: --analysis.days must be from 1 to %d, not %d\n", optimizer.MaxDays, *days)
		return 2
	}
	if *interval <= 0 || *ttl <= 0 || *maxStale < 0 {
		fmt.Fprintln(os.Stderr, "usage-optimizer: --analysis.interval and --cache.ttl must be positive, --cache.max-stale not negative")
		return 2
	}
	cfg := optimizer.DefaultConfig()
	if *configFile != "" {
		c, err := optimizer.LoadConfig(*configFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage-optimizer:", err)
			return 1
		}
		cfg = *c
	}
	if *configCheck {
		s, err := optimizer.NewSettings(&cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage-optimizer:", err)
			return 1
		}
		fmt.Printf("configuration OK (%d tiers, %d priced models)\n", len(cfg.Plans.Tiers), s.Prices.Len())
		return 0
	}

	level := promslog.NewLevel()
	_ = level.Set(*logLevel)
	logger := promslog.New(&promslog.Config{Level: level})
	logger.Info("starting usage-optimizer", "version", version.Info(), "build_context", version.BuildContext())

	ctx, stop, reload := admin.Signals()
	defer stop()

	err := optimizer.Run(ctx, optimizer.Options{
		Config: &cfg, ConfigFile: *configFile,
		PrometheusURL: *promURL, PrometheusTimeout: *promTimeout, ExporterURL: *exporterURL, RedisURL: *redisURL,
		Days: *days, Interval: *interval, CacheTTL: *ttl, MaxStale: *maxStale,
		TelemetryPath: *telemetry, Web: webFlags, Logger: logger, Reload: reload,
	})
	if err != nil {
		logger.Error("usage-optimizer stopped", "err", err)
		return 1
	}
	logger.Info("usage-optimizer stopped")
	return 0
}
