package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/rollup"
	"github.com/usage-exporter/usage-exporter/exporter/state"
	"github.com/usage-exporter/usage-exporter/exporter/storage"
	"github.com/usage-exporter/usage-exporter/internal/admin"
)

// stateFiles keeps the rollups' sealed days in the state directory.
type stateFiles struct{ *state.Dir }

func (f stateFiles) List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(f.Path())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// openRollups creates the process's rollups and continues from the state
// file's part of them (renaming its users when set).
func openRollups(days int, dir *state.Dir, saved []byte, renameUser func(string) string) (*rollup.Rollups, error) {
	r := rollup.New(days, stateFiles{dir})
	s := &rollup.Saved{}
	if len(saved) > 0 {
		var err error
		if s, err = rollup.DecodeSaved(saved); err != nil {
			return nil, err
		}
	}
	return r, r.Restore(s, renameUser)
}

// pushRollups puts the saved rollups in Redis every interval; at first,
// and every 60 intervals, it also puts the sealed days Redis lacks (lost, or
// sealed while Redis was away). A failure is logged once per change of state.
func (pr *process) pushRollups(ctx context.Context, every time.Duration, log *slog.Logger) {
	failing := false
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		var err error
		if n%60 == 0 {
			if err = pr.rollups.Reconcile(ctx); err != nil {
				n = -1 // again next time
			}
		} else {
			err = pr.rollups.Push(ctx)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			pr.m.rollupPushErrors.Inc()
			if !failing {
				log.Warn("putting the rollups in Redis failed; retrying", "err", err)
			}
			failing = true
		case err == nil && failing:
			log.Info("putting the rollups in Redis works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// rollupIDs map the ingest stages' indexes to the rollups' ids, filled as
// they are first met. The route, model and user ids live in the counter's
// caches beside their series.
type rollupIDs struct {
	r        *rollup.Rollups
	services []int32
	tiers    []int32
	reasons  map[string]int32
}

func newRollupIDs(r *rollup.Rollups, services, tiers []string) *rollupIDs {
	if r == nil {
		return nil
	}
	ids := &rollupIDs{r: r, reasons: map[string]int32{}}
	for _, s := range services {
		ids.services = append(ids.services, r.ServiceID(s))
	}
	for _, t := range tiers {
		ids.tiers = append(ids.tiers, r.TierID(t))
	}
	return ids
}

func (ids *rollupIDs) reason(r string) int32 {
	if r == "" {
		return -1
	}
	id, ok := ids.reasons[r]
	if !ok {
		id = ids.r.ReasonID(r)
		ids.reasons[r] = id
	}
	return id
}

// rollup counts a call in the rollups, by its line's time.
func (c *counter) rollup(cl *call, ev *event, rs *routeSeries, us *userSeries) {
	ids := c.rollups
	svc := c.services[cl.svc]
	if rs.rollup < 0 {
		rs.rollup = ids.r.RouteID(svc.name, rs.route)
	}
	if us.rollup < 0 {
		us.rollup = ids.r.UserID(us.label)
	}
	l := rollup.Line{Time: cl.at.UnixMilli(), Service: ids.services[cl.svc], Route: rs.rollup, Tier: ids.tiers[cl.tier],
		User: us.rollup, Model: -1, Unpriced: ids.reason(cl.unpriced), Failed: ev.status < 200 || ev.status >= 400,
		Timeout: ev.status == 408 || ev.status == 504, Duplicate: cl.duplicate, HasDuration: ev.hasDuration,
		Duration: ev.duration, Bytes: float64(ev.size), Egress: float64(ev.size) * c.egressGB / 1e9, UserHash: cl.userHash}
	if cl.unpriced == "" {
		l.Cost = cl.cost
	}
	if cl.model >= 0 {
		ms := c.model(cl.model)
		l.Model = ms.rollupID(ids.r, cl.svc, svc.name)
		if cl.hasTokens {
			ch := &cl.charge
			l.HasTokens = true
			l.Tokens = [5]float64{float64(ch.Input), float64(ch.Output), float64(ch.CacheRead),
				float64(ch.CacheWrite + ch.CacheWrite1h), float64(ch.Reasoning)}
			l.Prompt, l.UserTokens = ch.Prompt(), float64(cl.tokens)
		}
	}
	ids.r.Add(&l)
}

// rollupID is the rollups' id of the model's calls in a service.
func (ms *modelSeries) rollupID(r *rollup.Rollups, svc int, name string) int32 {
	for len(ms.rollup) <= svc {
		ms.rollup = append(ms.rollup, -1)
	}
	if ms.rollup[svc] < 0 {
		ms.rollup[svc] = r.ModelID(name, ms.label)
	}
	return ms.rollup[svc]
}

// windowHandler serves GET /api/v1/window?days=N: the rollups of the last N
// UTC days of log time, the newest line's day the last, as of the last
// checkpoint.
type windowHandler struct {
	r       *rollup.Rollups
	storage *storage.Measurer // nil when no storage is measured
	log     *slog.Logger      // nil: errors are not logged
}

func (h windowHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if h.r == nil {
		admin.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "rollups are off (rollups.days: 0)"})
		return
	}
	days := 7
	if vs, ok := req.URL.Query()["days"]; ok {
		n, err := strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 || n > rollup.MaxDays {
			admin.WriteJSON(w, http.StatusBadRequest, map[string]string{
				"error": fmt.Sprintf("days must be one integer from 1 to %d, not %q", rollup.MaxDays, strings.Join(vs, ","))})
			return
		}
		days = n
	}
	win, err := h.r.Window(req.Context(), days)
	if err != nil {
		// With Redis the error names its address: the log gets it, the body does not.
		if h.log != nil {
			h.log.Error("reading the rollups' window failed", "days", days, "err", err)
		}
		admin.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "reading the rollups failed; the exporter's log says why"})
		return
	}
	if h.storage != nil {
		win.StorageBytes = map[string]float64{}
		for vol, r := range h.storage.Results() {
			if r.OK || r.Bytes > 0 {
				win.StorageBytes[vol] = r.Bytes
			}
		}
	}
	admin.WriteJSON(w, http.StatusOK, win)
}
