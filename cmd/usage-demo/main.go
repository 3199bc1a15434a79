// Command usage-demo writes demo gateway traffic (a JSON log and an nginx
// log) and serves the LiteLLM /metrics that goes with it, for
// docker-compose.yml and `make demo`. It is a demo: never run it next to a
// real gateway's logs.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/usage-exporter/usage-exporter/internal/demo"
)

func main() {
	app := kingpin.New("usage-demo", "Demo traffic for usage-exporter: gateway and nginx logs, and a LiteLLM /metrics that agrees with them.")
	var (
		dir      = app.Flag("dir", "Directory of the logs (gateway.log, nginx-access.log).").Default("demo-logs").String()
		rate     = app.Flag("rate", "Calls a second at the busiest hour (fewer at night).").Default("20").Float64()
		users    = app.Flag("users", "Demo users (user-001, ...; every fourth on each tier).").Default("60").Int()
		backfill = app.Flag("backfill", "Calls dated over this span before now, written at start, so that dashboards and quotas fill at once.").Default("2h").Duration()
		listen   = app.Flag("litellm.listen-address", "Where LiteLLM's /metrics is served; empty serves none.").Default(":4000").String()
		seed     = app.Flag("seed", "Random seed.").Default("1").Uint64()
	)
	kingpin.MustParse(app.Parse(os.Args[1:]))
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *rate <= 0 || *users <= 0 || *backfill < 0 {
		fmt.Fprintln(os.Stderr, "usage-demo: --rate and --users must be positive, --backfill not negative")
		os.Exit(2)
	}
	d, err := demo.New(*dir, *users, *seed, time.Now())
	if err != nil {
		logger.Error("start", "err", err)
		os.Exit(1)
	}
	if err := d.Backfill(*backfill, *rate, time.Now()); err != nil {
		logger.Error("backfill", "err", err)
		os.Exit(1)
	}
	logger.Info("demo traffic", "dir", *dir, "backfilled_calls", d.Calls(), "peak_rate", *rate, "litellm", *listen)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *listen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			d.WriteMetrics(w)
		})
		mux.HandleFunc("GET /health/liveliness", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "I'm alive!") })
		srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("litellm /metrics", "err", err)
				stop()
			}
		}()
		defer srv.Close()
	}
	if err := d.Run(ctx.Done(), *rate, 250*time.Millisecond, time.Now); err != nil {
		logger.Error("writing", "err", err)
		os.Exit(1)
	}
}
