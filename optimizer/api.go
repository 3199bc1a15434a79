package optimizer

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/admin"
)

// APIPrefix is the base path of the analytics API the optimizer keeps.
const APIPrefix = "/api/v1/analytics/usage/"

// Views are the endpoints under APIPrefix.
var Views = []string{"overview", "patterns", "by-user", "by-service", "costs", "optimization", "performance", "quotas"}

// Parameter ranges of the API.
const (
	DefaultDays  = 7
	MaxDays      = 90
	DefaultLimit = 100
	MaxLimit     = 1000
)

// apiError is the body of every 4xx and 5xx answer.
type apiError struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
	Allowed   string `json:"allowed,omitempty"`
	// For 503: how old the last good result is, when there is one.
	LastGoodAgeSeconds *float64   `json:"last_good_result_age_seconds,omitempty"`
	LastGoodAt         *time.Time `json:"last_good_result_generated_at,omitempty"`
}

// intParam reads an optional integer parameter within [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int) (int, *apiError) {
	vals, ok := r.URL.Query()[name]
	if !ok {
		return def, nil
	}
	allowed := fmt.Sprintf("an integer from %d to %d (default %d)", lo, hi, def)
	if len(vals) > 1 {
		return 0, &apiError{Error: fmt.Sprintf("%s is given %d times; give it once", name, len(vals)), Parameter: name, Allowed: allowed}
	}
	n, err := strconv.Atoi(strings.TrimSpace(vals[0]))
	if err != nil {
		return 0, &apiError{Error: fmt.Sprintf("%s must be an integer from %d to %d, not %q", name, lo, hi, vals[0]),
			Parameter: name, Allowed: allowed}
	}
	if n < lo || n > hi {
		return 0, &apiError{Error: fmt.Sprintf("%s must be from %d to %d, not %d", name, lo, hi, n), Parameter: name, Allowed: allowed}
	}
	return n, nil
}

// API serves the analytics endpoints from an engine.
type API struct {
	Engine *Engine

	once sync.Once
	mux  *http.ServeMux
}

// ServeHTTP routes GET APIPrefix{view}; other methods and paths get JSON errors.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.once.Do(func() {
		a.mux = http.NewServeMux()
		a.mux.HandleFunc("GET "+APIPrefix+"{view}", a.serveView)
		a.mux.HandleFunc("GET "+APIPrefix+"tools/{tool}", a.serveTool)
		a.mux.HandleFunc(APIPrefix, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				admin.WriteJSON(w, http.StatusMethodNotAllowed, apiError{Error: r.Method + " is not allowed; use GET"})
				return
			}
			notFound(w, r)
		})
	})
	a.mux.ServeHTTP(w, r)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	admin.WriteJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("no endpoint %q", r.URL.Path),
		Allowed: APIPrefix + "{" + strings.Join(Views, ",") + "}"})
}

func (a *API) serveView(w http.ResponseWriter, r *http.Request) {
	view := r.PathValue("view")
	if !slices.Contains(Views, view) {
		notFound(w, r)
		return
	}
	days, perr := intParam(r, "days", DefaultDays, 1, MaxDays)
	limit := DefaultLimit
	if perr == nil && view == "by-user" {
		limit, perr = intParam(r, "limit", DefaultLimit, 1, MaxLimit)
	}
	format := r.URL.Query().Get("format")
	if perr == nil && format != "" && format != "json" && !(view == "optimization" && format == "csv") {
		allowed := "json"
		if view == "optimization" {
			allowed = "json or csv"
		}
		perr = &apiError{Error: fmt.Sprintf("format must be %s, not %q", allowed, format), Parameter: "format", Allowed: allowed}
	}
	if perr != nil {
		admin.WriteJSON(w, http.StatusBadRequest, perr)
		return
	}

	rep, err := a.Engine.Report(r.Context(), days)
	var meta Meta
	if rep != nil {
		meta = rep.Meta
		meta.AgeSeconds = math.Round(a.Engine.Age(rep).Seconds())
	}
	if err != nil {
		if rep == nil || a.Engine.Age(rep) > a.Engine.TTL+a.Engine.MaxStale {
			// The error names the source's URL and the dial error: the log has
			// it (Engine.Report logged it), the body says only what failed.
			body := apiError{Error: publicError(err)}
			if rep != nil {
				body.LastGoodAgeSeconds, body.LastGoodAt = &meta.AgeSeconds, &rep.GeneratedAt
			}
			w.Header().Set("Retry-After", "30")
			admin.WriteJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		meta.Stale, meta.Error = true, publicError(err)
		w.Header().Set("Warning", `110 - "Response is Stale"`)
	}
	h := w.Header()
	h.Set("Age", strconv.Itoa(int(meta.AgeSeconds)))
	h.Set("X-Usage-Source", meta.Source)
	h.Set("X-Usage-Since-Exporter-Start", strconv.FormatBool(meta.SinceExporterStart))
	h.Set("X-Usage-Generated-At", meta.GeneratedAt.Format(time.RFC3339))
	if format == "csv" {
		writeCSV(w, rep, days)
		return
	}
	admin.WriteJSON(w, http.StatusOK, rep.view(view, limit, &meta))
}

// publicError is what a client is told of a failed analysis.
func publicError(err error) string {
	if errors.Is(err, ErrUnavailable) {
		return ErrUnavailable.Error() + "; the optimizer's log says why"
	}
	return "analysis failed; the optimizer's log says why"
}

// view is the response body of one endpoint; objects carry meta.
func (r *Report) view(name string, limit int, meta *Meta) any {
	switch name {
	case "overview":
		v := r.Overview
		v.Meta = meta
		return v
	case "patterns":
		v := r.Patterns
		v.Meta = meta
		return v
	case "by-user":
		return r.Users[:min(limit, len(r.Users))]
	case "by-service":
		return r.Services
	case "costs":
		v := r.Costs
		v.Meta = meta
		return v
	case "optimization":
		v := r.Optimization
		v.Meta = meta
		return v
	case "performance":
		v := r.Performance
		v.Meta = meta
		return v
	default: // quotas: tier names are the keys, so meta cannot sit beside them
		return r.Quotas
	}
}

// CSVHeader is the first row of /optimization?format=csv.
var CSVHeader = []string{"id", "type", "priority", "current", "recommended", "potential_savings",
	"savings_dollars_per_month", "revenue", "impact", "implementation_effort", "evidence", "group", "alternative_to",
	"counted_savings_dollars_per_month"}

func writeCSV(w http.ResponseWriter, rep *Report, days int) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="optimization-%dd.csv"`, days))
	cw := csv.NewWriter(w)
	_ = cw.Write(CSVHeader)
	for _, r := range rep.Optimization.Recommendations {
		ev, _ := json.Marshal(r.Evidence)
		_ = cw.Write([]string{r.ID, r.Type, r.Priority, r.Current, r.Recommended, r.PotentialSavings,
			strconv.FormatFloat(r.Savings, 'f', 2, 64), strconv.FormatBool(r.Revenue), r.Impact, r.Effort, string(ev),
			r.Group, r.AlternativeTo, strconv.FormatFloat(r.CountedSavings, 'f', 2, 64)})
	}
	cw.Flush()
}
