package optimizer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/internal/auth"
	"github.com/usage-exporter/usage-exporter/plans"
)

// Options are the sidecar's process settings, mostly from flags.
type Options struct {
	Config     *Config
	ConfigFile string // re-read on reload; empty keeps Config

	// PrometheusURL selects the Prometheus source; otherwise ExporterURL
	// (the exporter's /metrics) is read.
	PrometheusURL     string
	PrometheusTimeout time.Duration
	ExporterURL       string

	RedisURL string // the shared report cache; memory when empty

	Days     int           // window of the background analysis and its series
	Interval time.Duration // of the background analysis
	CacheTTL time.Duration
	MaxStale time.Duration
	// AuthClient reaches the token issuer (tests: its httptest client); Now
	// is the guard's clock. Both default to the real ones.
	AuthClient *http.Client
	Now        func() time.Time

	TelemetryPath string
	Web           *web.FlagConfig
	Listeners     []net.Listener // served instead of Web's addresses (tests)
	Logger        *slog.Logger
	Registry      *prometheus.Registry
	Reload        <-chan struct{}
}

// NewSource picks the source the options name.
func NewSource(o Options) (Source, error) {
	if o.PrometheusURL != "" {
		q, err := NewQuerier(o.PrometheusURL)
		if err != nil {
			return nil, fmt.Errorf("prometheus.url: %w", err)
		}
		return &PrometheusSource{Q: q, URL: o.PrometheusURL, Timeout: o.PrometheusTimeout}, nil
	}
	if o.ExporterURL == "" {
		return nil, errors.New("set --prometheus.url or --exporter.url")
	}
	return &ExporterSource{URL: o.ExporterURL, Client: &http.Client{Timeout: o.PrometheusTimeout}}, nil
}

// Run serves until ctx ends or serving fails.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := auth.CheckWebConfig(o.Web, o.Config.Auth); err != nil {
		return err
	}
	settings, err := NewSettings(o.Config)
	if err != nil {
		return err
	}
	src, err := NewSource(o)
	if err != nil {
		return err
	}
	var cache Cache = NewMemoryCache()
	if o.RedisURL != "" {
		rc, err := NewRedisCache(o.RedisURL, "usage_optimizer:", 2*time.Second)
		if err != nil {
			return err
		}
		host, _ := os.Hostname()
		var nonce [4]byte
		_, _ = rand.Read(nonce[:])
		rc.owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(nonce[:]))
		defer rc.Close()
		cache = rc
	}
	eng := NewEngine(src, cache, settings)
	eng.Logger = log
	if o.CacheTTL > 0 {
		eng.TTL = o.CacheTTL
	}
	if o.MaxStale >= 0 {
		eng.MaxStale = o.MaxStale
	}
	if o.PrometheusTimeout > 0 {
		eng.LockWait = o.PrometheusTimeout + 5*time.Second
	}

	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("usage_optimizer"))
	if err := eng.Register(reg); err != nil {
		return err
	}
	if o.Config.Keycloak.Enabled() {
		kc, err := plans.StartKeycloak(ctx, o.Config.Keycloak, reg, "usage_optimizer", log.With("component", "keycloak"), nil)
		if err != nil {
			return err
		}
		eng.Directory = kc
	}
	reloadOK := prometheus.NewGauge(prometheus.GaugeOpts{Name: "usage_optimizer_config_last_reload_successful",
		Help: "1 if the last reload (SIGHUP or POST /-/reload) succeeded."})
	reloadOK.Set(1)
	reg.MustRegister(reloadOK)

	guard := auth.NewReloadable(o.Config.Auth, o.AuthClient, o.Now, log)
	reloads := make(chan chan error)
	reload := func() error {
		cfg := o.Config
		if o.ConfigFile != "" {
			if cfg, err = LoadConfig(o.ConfigFile); err != nil {
				reloadOK.Set(0)
				return err
			}
		}
		s, err := NewSettings(cfg)
		if err != nil {
			reloadOK.Set(0)
			return err
		}
		eng.SetSettings(s)
		guard.Set(cfg.Auth)
		reloadOK.Set(1)
		return nil
	}
	httpErr, shutdown := admin.Serve(o.Listeners, newMux(reg, eng, guard, o, reloads), o.Web, log)
	defer shutdown()

	days, every := o.Days, o.Interval
	if days == 0 {
		days = DefaultDays
	}
	if every <= 0 {
		every = 5 * time.Minute
	}
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	go eng.Loop(loopCtx, days, every)
	log.Info("optimizer running", "source", src.Name(), "days", days, "interval", every)

	for {
		var reply chan error
		select {
		case <-ctx.Done():
			return nil
		case err := <-httpErr:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-o.Reload:
		case reply = <-reloads:
		}
		err := reload()
		if err != nil {
			log.Error("configuration reload failed; the running configuration stays", "err", err)
		} else {
			log.Info("configuration reloaded")
		}
		if reply != nil {
			reply <- err
		}
	}
}

func newMux(reg *prometheus.Registry, eng *Engine, guard *auth.Reloadable, o Options, reloads chan chan error) *http.ServeMux {
	path := o.TelemetryPath
	if path == "" {
		path = "/metrics"
	}
	mux := http.NewServeMux()
	mux.Handle(path, promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true, Registry: reg})))
	mux.Handle(APIPrefix, guard.Wrap(&API{Engine: eng}))
	admin.Handle(mux, func() error {
		if eng.Current() == nil {
			return errors.New("no analysis has succeeded yet")
		}
		return nil
	}, reloads)
	links := []web.LandingLinks{{Address: path, Text: "Metrics"}}
	for _, v := range Views {
		links = append(links, web.LandingLinks{Address: APIPrefix + v, Text: v})
	}
	links = append(links, web.LandingLinks{Address: APIPrefix + "optimization?format=csv", Text: "optimization (CSV)"},
		web.LandingLinks{Address: APIPrefix + "tools/compare-models?input_tokens=1000&output_tokens=500", Text: "tools: compare models",
			Description: "also tools/estimate-cost, tools/caching-roi, tools/plan-tier"})
	if landing, err := web.NewLandingPage(web.LandingConfig{
		Name: "usage-optimizer", Description: "Cost recommendations from API usage", Version: version.Info(), Links: links,
	}); err == nil && path != "/" {
		mux.Handle("/", landing)
	}
	return mux
}
