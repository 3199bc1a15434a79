package exporter

import (
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/usage-exporter/usage-exporter/exporter/series"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/internal/auth"
)

// newMux routes the exporter's endpoints: the metrics, the quota API, the
// lifecycle endpoints and the landing page.
func newMux(reg prometheus.Registerer, base prometheus.Gatherer, lines *series.Set, q *quotas, win http.Handler,
	guard *auth.Reloadable, opts Options, log *slog.Logger, ready *atomic.Bool, reloads chan chan error) *http.ServeMux {
	path := opts.TelemetryPath
	if path == "" {
		path = "/metrics"
	}
	mux := http.NewServeMux()
	mux.Handle(path, promhttp.InstrumentMetricHandler(reg, series.Handler(base, lines, log, q)))
	// The quota API names users and their use: it is guarded as the
	// optimizer's API is. /api/v1/window is read by the optimizer as
	// /metrics is by Prometheus, under the web configuration.
	mux.Handle("GET /api/v1/quotas", guard.Wrap(q))
	mux.Handle("GET /api/v1/quotas/users", guard.Wrap(http.HandlerFunc(q.serveUsers)))
	mux.Handle("GET /api/v1/window", win)
	mux.HandleFunc("/api/v1/quotas", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		admin.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET"})
	})
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
				{Address: "/api/v1/quotas/users", Text: "Quota use of every labelled user"},
				{Address: "/api/v1/window?days=7", Text: "Usage by log time", Description: "the rollups the optimizer reads"},
			},
		})
		if err == nil {
			mux.Handle("/", landing)
		}
	}
	return mux
}
