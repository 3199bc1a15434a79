// Package admin holds what usage-exporter and usage-optimizer share as
// Prometheus-style processes: the lifecycle endpoints and SIGHUP reloads.
package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// Handle serves /-/healthy, /-/ready (503 with ready's error until it
// returns nil) and POST /-/reload, which hands a reply channel to reloads
// and answers 400 with the error the reload reports.
func Handle(mux *http.ServeMux, ready func() error, reloads chan<- chan error) {
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "Not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST to reload the configuration", http.StatusMethodNotAllowed)
			return
		}
		reply := make(chan error, 1)
		select {
		case reloads <- reply:
		case <-r.Context().Done():
			return
		}
		if err := <-reply; err != nil {
			http.Error(w, "reload failed: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "Reloaded")
	})
}

// Signals returns a context that ends on SIGINT or SIGTERM, and a channel
// that receives on SIGHUP until then.
func Signals() (context.Context, context.CancelFunc, <-chan struct{}) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{})
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, stop, reload
}

// Serve serves handler with exporter-toolkit: on listeners when there are
// some (tests pass them), else on what flags name (addresses, vsock://:port,
// or systemd socket activation), with TLS and basic auth from
// --web.config.file. Listening and serving errors arrive on the channel;
// shutdown stops the server, giving requests in flight five seconds.
func Serve(listeners []net.Listener, handler http.Handler, flags *web.FlagConfig, log *slog.Logger) (<-chan error, func()) {
	if flags == nil {
		empty, off := "", false
		flags = &web.FlagConfig{WebConfigFile: &empty, WebListenAddresses: &[]string{}, WebSystemdSocket: &off}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if listeners != nil {
			errc <- web.ServeMultiple(listeners, srv, flags, log)
		} else {
			errc <- web.ListenAndServe(srv, flags, log)
		}
	}()
	shutdown := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return errc, shutdown
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Every calls f at once and then at each tick until ctx ends; a nil tick
// is a ticker of every (tests hand their own channel instead).
func Every(ctx context.Context, every time.Duration, tick <-chan time.Time, f func(context.Context)) {
	if tick == nil {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}
