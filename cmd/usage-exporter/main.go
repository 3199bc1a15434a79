// Command usage-exporter follows API gateway access logs and serves usage,
// cost and latency series for Prometheus.
package main

import (
	"fmt"
	"net"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"github.com/usage-exporter/usage-exporter/exporter"
	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/pricing"
)

func main() { os.Exit(run()) }

func run() int {
	app := kingpin.New("usage-exporter", "Prometheus exporter for API gateway usage, cost and latency.")
	var (
		configFile    = app.Flag("config.file", "Configuration file (YAML). Without it, defaults and flags apply.").String()
		configCheck   = app.Flag("config.check", "Validate the configuration and exit.").Bool()
		telemetryPath = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		webFlags      = kingpinflag.AddFlags(app, ":9816")
		logLevel      = app.Flag("log.level", "Only log messages with the given severity or above: debug, info, warn, error.").
				Default("info").Enum("debug", "info", "warn", "error")
		logPaths = app.Flag("log.path", "Access log file or glob to read (repeatable). Replaces the sources of the configuration file.").
				Strings()
		logDir = app.Flag("log.dir", "Directory whose *.log files are read when neither --log.path nor the configuration names a source.").
			Default(exporter.DefaultLogDir).Envar("LOG_DIR").String()
		logFormat = app.Flag("log.format", "Access log format: json or nginx.").Enum(logparse.Formats...)
		logStart  = app.Flag("log.start", "Where to start reading files found at start: checkpoint, beginning or end.").
				Enum("checkpoint", "beginning", "end")
		stateDir = app.Flag("state.dir", "Directory for read checkpoints and other state.").
				Default("/var/lib/usage-exporter").String()
		litellmURL = app.Flag("litellm.url", "LiteLLM proxy to scrape (base URL or its /metrics).").
				Envar("LITELLM_PROXY_URL").String()
		redisURL = app.Flag("redis.url", "Redis for the shared usage ledger and tiers, redis://host:port/db.").
				Envar("REDIS_URL").String()
		redisHost = app.Flag("redis.host", "Redis host, when --redis.url is not set (the old system's variables).").
				Envar("REDIS_HOST").String()
		redisPort = app.Flag("redis.port", "Redis port, with --redis.host.").Default("6379").Envar("REDIS_PORT").String()
	)
	app.Command("serve", "Follow the logs and serve /metrics (the default).").Default()
	bf := backfillCommand(app)
	fg := forgetCommand(app)
	app.Version(version.Print("usage-exporter"))
	app.HelpFlag.Short('h')
	command, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if *redisURL == "" && *redisHost != "" {
		*redisURL = "redis://" + net.JoinHostPort(*redisHost, *redisPort) + "/0"
	}

	// Flags (and their environment variables) override the file, at start
	// and on every reload.
	overrides := func(c *exporter.Config) {
		switch {
		case len(*logPaths) > 0:
			c.Logs.Sources = c.Logs.Sources[:0]
			for _, p := range *logPaths {
				c.Logs.Sources = append(c.Logs.Sources, exporter.SourceConfig{Path: p, Config: logparse.DefaultConfig()})
			}
		case len(c.Logs.Sources) == 1 && c.Logs.Sources[0].Path == exporter.DefaultSource(exporter.DefaultLogDir).Path:
			c.Logs.Sources[0].Path = exporter.DefaultSource(*logDir).Path
		}
		if *logFormat != "" {
			for i := range c.Logs.Sources {
				c.Logs.Sources[i].Format = *logFormat
			}
		}
		if *logStart != "" {
			c.Logs.Start = *logStart
		}
		if *litellmURL != "" {
			c.LiteLLM.URL = *litellmURL
		}
		if *redisURL != "" {
			c.Redis.URL = *redisURL
		}
	}
	cfg, err := loadConfig(*configFile, overrides)
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage-exporter:", err)
		return 1
	}
	switch command {
	case "backfill":
		return bf.run(cfg)
	case "forget":
		return fg.run(cfg, *stateDir)
	}
	if *configCheck {
		prices, err := pricing.Load(cfg.Pricing)
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage-exporter: pricing:", err)
			return 1
		}
		fmt.Printf("configuration OK (%d sources, %d priced models)\n", len(cfg.Logs.Sources), prices.Len())
		return 0
	}

	level := promslog.NewLevel()
	_ = level.Set(*logLevel)
	logger := promslog.New(&promslog.Config{Level: level})
	logger.Info("starting usage-exporter", "version", version.Info(), "build_context", version.BuildContext())

	ctx, stop, reload := admin.Signals()
	defer stop()

	err = exporter.Run(ctx, exporter.Options{
		Config: cfg, ConfigFile: *configFile, Overrides: overrides,
		StateDir: *stateDir, TelemetryPath: *telemetryPath, Web: webFlags,
		Logger: logger, Reload: reload,
	})
	if err != nil {
		logger.Error("usage-exporter stopped", "err", err)
		return 1
	}
	logger.Info("usage-exporter stopped")
	return 0
}

// loadConfig reads the file (or takes the defaults) and applies the flags.
func loadConfig(path string, overrides func(*exporter.Config)) (*exporter.Config, error) {
	cfg := exporter.DefaultConfig()
	if path != "" {
		c, err := exporter.LoadConfig(path)
		if err != nil {
			return nil, err
		}
		cfg = *c
	}
	overrides(&cfg)
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	return &cfg, nil
}
