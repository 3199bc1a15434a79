package exporter

import (
	"context"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/plans"
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

var resources = []string{"calls", "tokens"}

// quotaView is what a saved checkpoint publishes besides the ledger: the
// current period, and the users' tiers and labels.
type quotaView struct {
	period quota.Period
	tiers  map[string]string
	labels map[string]string // user label, for users within the user cap
}

// quotas serves the ledger as the usage_quota_* series and GET
// /api/v1/quotas, from the store's read model.
type quotas struct {
	store quota.Store
	cfg   atomic.Pointer[Config]
	view  atomic.Pointer[quotaView]
	now   func() time.Time
}

func newQuotas(store quota.Store, cfg *Config, now func() time.Time) *quotas {
	q := &quotas{store: store, now: now}
	q.cfg.Store(cfg)
	return q
}

// Describe implements prometheus.Collector.
func (q *quotas) Describe(ch chan<- *prometheus.Desc) {
	ch <- quotaLimitDesc
	ch <- quotaUsedDesc
	ch <- quotaRatioDesc
	ch <- quotaPeriodDesc
	ch <- quotaPeriodEndDesc
}

// Collect implements prometheus.Collector: the current period's usage by
// user (the embedded ledger, or Redis' plus this exporter's uncommitted
// counts).
func (q *quotas) Collect(ch chan<- prometheus.Metric) {
	cfg := q.cfg.Load()
	for _, t := range cfg.Plans.Tiers {
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
	if cfg.Users.Label == UserLabelDropped {
		return // no per-user series without user labels
	}
	type key struct{ label, tier string }
	agg := map[key]quota.Usage{}
	labelled := len(v.labels)
	for user, u := range q.store.Usage(context.Background(), v.period.ID) {
		label, ok := v.labels[user]
		if !ok {
			// Users this exporter has not labelled (seen by another exporter
			// sharing the ledger, or from before a restart) get the same policy and cap.
			if labelled >= cfg.Users.MaxUsers {
				label = otherLabel
			} else {
				label = userLabel(cfg.Users, []byte(user))
				labelled++
			}
		}
		k := key{label, tierOf(cfg, v, user)}
		a := agg[k]
		agg[k] = quota.Usage{Calls: a.Calls + u.Calls, Tokens: a.Tokens + u.Tokens}
	}
	for k, u := range agg {
		t, limited := cfg.Plans.Lookup(k.tier)
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

// tierOf returns a user's tier: as last resolved by the ingester, else as
// configured, else the default.
func tierOf(cfg *Config, v *quotaView, user string) string {
	if t, ok := v.tiers[user]; ok {
		return t
	}
	if t, ok := cfg.Plans.Users[user]; ok {
		return t
	}
	return cfg.Plans.DefaultTier
}

func limitOf(t plans.Tier, resource string) plans.Limit {
	if resource == "calls" {
		return *t.Calls
	}
	return *t.Tokens
}

// ratio is used/limit, NaN for unlimited tiers.
func ratio(used int64, l plans.Limit) float64 {
	if l.IsUnlimited() {
		return math.NaN()
	}
	if l == 0 {
		return math.Inf(1)
	}
	return float64(used) / float64(l)
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

// ServeHTTP answers GET /api/v1/quotas?user=ID[&period=YYYY-MM-DD].
func (q *quotas) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := q.cfg.Load()
	user := r.URL.Query().Get("user")
	if user == "" {
		admin.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "the user parameter is required: /api/v1/quotas?user=ID"})
		return
	}
	ps, _ := quota.NewPeriods(cfg.Quota.Period)
	v := q.view.Load()
	if v == nil {
		v = &quotaView{}
	}
	period := v.period
	if id := r.URL.Query().Get("period"); id != "" {
		p, ok := ps.ByID(id)
		if !ok {
			admin.WriteJSON(w, http.StatusBadRequest, map[string]string{
				"error": "period must be the first day of a billing period, YYYY-MM-DD, e.g. " + ps.Of(q.now()).ID})
			return
		}
		period = p
	} else if period.ID == "" {
		period = ps.Of(q.now())
	}
	u := q.store.Usage(r.Context(), period.ID)[user]
	resp := quotaResponse{User: user, Tier: tierOf(cfg, v, user),
		Period: periodJSON{ID: period.ID, Start: period.Start, End: period.End},
		Limits: map[string]any{}, Used: map[string]int64{"calls": u.Calls, "tokens": u.Tokens},
		Remaining: map[string]any{}, UsedPercent: map[string]float64{}}
	t, limited := cfg.Plans.Lookup(resp.Tier)
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
	admin.WriteJSON(w, http.StatusOK, resp)
}
