package exporter

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
)

var (
	quotaLimitDesc = prometheus.NewDesc("usage_quota_limit",
		"Allowance per billing period by tier and resource (calls, tokens); absent for unlimited tiers.",
		[]string{"tier", "resource"}, nil)
	quotaUsedDesc = prometheus.NewDesc("usage_quota_used",
		"Calls and tokens used in the current billing period, by user, tier and resource (from the ledger).",
		[]string{"user", "tier", "resource"}, nil)
	quotaRatioDesc = prometheus.NewDesc("usage_quota_used_ratio",
		"Used over the tier's allowance in the current billing period; absent for unlimited tiers.",
		[]string{"user", "tier", "resource"}, nil)
	quotaPeriodDesc = prometheus.NewDesc("usage_quota_period_start_timestamp_seconds",
		"Start of the current billing period.", nil, nil)
	quotaPeriodEndDesc = prometheus.NewDesc("usage_quota_period_end_timestamp_seconds",
		"End of the current billing period (exclusive).", nil, nil)
)

// quotaCollector reads the ledger at scrape time: the embedded ledger, or
// the shared one in Redis plus this exporter's counts not yet committed.
type quotaCollector struct {
	state atomic.Pointer[quotaState]
}

func (c *quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quotaLimitDesc
	ch <- quotaUsedDesc
	ch <- quotaRatioDesc
	ch <- quotaPeriodDesc
	ch <- quotaPeriodEndDesc
}

var resources = []string{"calls", "tokens"}

func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	q := c.state.Load()
	if q == nil {
		return
	}
	for _, t := range q.cfg.Plans.Tiers {
		for _, r := range resources {
			if l := limitOf(t, r); !l.IsUnlimited() {
				ch <- prometheus.MustNewConstMetric(quotaLimitDesc, prometheus.GaugeValue, float64(l), t.Name, r)
			}
		}
	}
	v := q.view.Load()
	if v == nil || v.period.ID == "" {
		return
	}
	ch <- prometheus.MustNewConstMetric(quotaPeriodDesc, prometheus.GaugeValue, float64(v.period.Start.Unix()))
	ch <- prometheus.MustNewConstMetric(quotaPeriodEndDesc, prometheus.GaugeValue, float64(v.period.End.Unix()))
	if q.cfg.Users.Label == UserLabelDropped {
		return // no per-user series without user labels
	}
	type key struct{ label, tier string }
	agg := map[key]quota.Usage{}
	labelled := len(v.labels)
	for user, u := range q.usage(context.Background(), v.period.ID) {
		label, ok := v.labels[user]
		if !ok {
			// Users this exporter has not labelled (seen by another exporter
			// sharing the ledger, or from before a restart) get the same policy and cap.
			if labelled >= q.cfg.Users.MaxUsers {
				label = otherLabel
			} else {
				label = userLabel(q.cfg.Users, []byte(user))
				labelled++
			}
		}
		k := key{label, q.tierOf(v, user)}
		a := agg[k]
		agg[k] = quota.Usage{Calls: a.Calls + u.Calls, Tokens: a.Tokens + u.Tokens}
	}
	for k, u := range agg {
		t, limited := q.cfg.Plans.Lookup(k.tier)
		for _, r := range resources {
			used := u.Calls
			if r == "tokens" {
				used = u.Tokens
			}
			ch <- prometheus.MustNewConstMetric(quotaUsedDesc, prometheus.GaugeValue, float64(used), k.label, k.tier, r)
			if limited && k.label != otherLabel {
				if x := ratio(used, limitOf(t, r)); !math.IsNaN(x) {
					ch <- prometheus.MustNewConstMetric(quotaRatioDesc, prometheus.GaugeValue, x, k.label, k.tier, r)
				}
			}
		}
	}
}

// quotaResponse is the admin view of one user's quota.
type quotaResponse struct {
	User        string             `json:"user"`
	Tier        string             `json:"tier"`
	Period      periodJSON         `json:"period"`
	Limits      map[string]any     `json:"limits"`
	Used        map[string]int64   `json:"used"`
	Remaining   map[string]any     `json:"remaining"`
	UsedPercent map[string]float64 `json:"used_percent,omitempty"`
}

type periodJSON struct {
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// quotaHandler serves GET /api/v1/quotas?user=ID[&period=YYYY-MM-DD].
func quotaHandler(qc *quotaCollector) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET"})
			return
		}
		q := qc.state.Load()
		if q == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the ledger is not ready yet"})
			return
		}
		user := r.URL.Query().Get("user")
		if user == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the user parameter is required: /api/v1/quotas?user=ID"})
			return
		}
		ps, _ := quota.NewPeriods(q.cfg.Quota.Period)
		v := q.view.Load()
		var period quota.Period
		switch id := r.URL.Query().Get("period"); {
		case id != "":
			p, ok := ps.ByID(id)
			if !ok {
				writeJSON(w, http.StatusBadRequest, map[string]string{
					"error": "period must be the first day of a billing period, YYYY-MM-DD, e.g. " + ps.Of(time.Now()).ID})
				return
			}
			period = p
		case v != nil && v.period.ID != "":
			period = v.period
		default:
			period = ps.Of(time.Now())
		}
		if v == nil {
			v = &quotaView{ledger: quota.NewLedger()}
		}
		u := q.usage(r.Context(), period.ID)[user]
		resp := quotaResponse{User: user, Tier: q.tierOf(v, user),
			Period: periodJSON{ID: period.ID, Start: period.Start, End: period.End},
			Limits: map[string]any{}, Used: map[string]int64{"calls": u.Calls, "tokens": u.Tokens},
			Remaining: map[string]any{}, UsedPercent: map[string]float64{}}
		t, limited := q.cfg.Plans.Lookup(resp.Tier)
		for _, res := range resources {
			if !limited {
				resp.Limits[res], resp.Remaining[res] = nil, nil
				continue
			}
			l := limitOf(t, res)
			if l.IsUnlimited() {
				resp.Limits[res], resp.Remaining[res] = "unlimited", "unlimited"
				continue
			}
			resp.Limits[res] = int64(l)
			resp.Remaining[res] = max(int64(l)-resp.Used[res], 0)
			if x := ratio(resp.Used[res], l); !math.IsInf(x, 0) {
				resp.UsedPercent[res] = math.Round(x*1000) / 10
			}
		}
		writeJSON(w, http.StatusOK, resp)
	}
}
