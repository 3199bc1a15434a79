package exporter

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/series"
	"github.com/usage-exporter/usage-exporter/internal/admin"
	"github.com/usage-exporter/usage-exporter/plans"
)

// The quota families, written by the quotas block at each scrape.
const (
	quotaLimitName     = "usage_quota_limit"
	quotaUsedName      = "usage_quota_used"
	quotaRatioName     = "usage_quota_used_ratio"
	quotaPeriodName    = "usage_quota_period_start_timestamp_seconds"
	quotaPeriodEndName = "usage_quota_period_end_timestamp_seconds"
	quotaLimitHelp     = "Allowance per billing period by tier and resource (calls, tokens); absent for unlimited tiers."
	quotaUsedHelp      = "Calls and tokens used in the current billing period, by user, tier and resource (from the ledger); users without a label of their own are summed per tier under __other__."
	quotaRatioHelp     = "Used over the tier's allowance in the current billing period (metrics.quota_ratio); absent for unlimited tiers and __other__."
	quotaPeriodHelp    = "Start of the current billing period."
	quotaPeriodEndHelp = "End of the current billing period (exclusive)."
)

var resources = []string{"calls", "tokens"}

// quotaView is what a saved checkpoint publishes for the quota series and
// API: the current period, the users with a label of their own, and every
// user's tier. The ingest goroutine builds a new one only when one of them
// changed.
type quotaView struct {
	period quota.Period
	// labelled users, sorted by label then tier, with their rendered labels.
	users []quotaUser
	// byID finds a stored id's labelled user (index in users) and tier.
	byID map[string]viewUser
	// tierNames are the names of the tier indexes; defaultTier for users
	// the view does not know (configured tiers are in byID).
	tierNames   []string
	defaultTier int
	// other holds the labels of __other__ per tier.
	other []quotaLabels
	// versions the view was built from.
	usersVersion, tiersVersion uint64
}

type viewUser struct {
	tier     int32
	labelled int32 // index in users, or -1
}

type quotaUser struct {
	id, label string
	tier      int
	labels    quotaLabels
}

// quotaLabels are one user and tier's rendered label sets, by resource.
type quotaLabels [2]series.Labels

func newQuotaLabels(user, tier string) quotaLabels {
	names := []string{"user", "tier", "resource"}
	return quotaLabels{series.NewLabels(names, []string{user, tier, "calls"}), series.NewLabels(names, []string{user, tier, "tokens"})}
}

// quotaView returns the view of the ingester's state, the previous one
// when nothing it holds changed.
func (in *ingester) quotaView(prev *quotaView) *quotaView {
	l, u := in.ledger, in.attr.users
	period := l.current()
	if prev != nil && prev.period.ID == period.ID && prev.usersVersion == u.version && prev.tiersVersion == l.tiersChanged &&
		slices.Equal(prev.tierNames, in.attr.tiers.Names()) {
		return prev
	}
	names := in.attr.tiers.Names()
	v := &quotaView{period: period, tierNames: names, usersVersion: u.version, tiersVersion: l.tiersChanged,
		byID: make(map[string]viewUser, len(l.tierOf)+len(in.cfgUsers))}
	v.defaultTier = in.attr.tiers.Default()
	// Configured tiers, then the tiers last resolved from lines.
	for id, t := range in.cfgUsers {
		v.byID[id] = viewUser{tier: int32(t), labelled: -1}
	}
	for id, t := range l.tierOf {
		v.byID[id] = viewUser{tier: int32(t), labelled: -1}
	}
	u.labelled(func(id, label string) {
		if label == "" {
			return // the dropped policy: no user has a label
		}
		vu, ok := v.byID[id]
		if !ok {
			vu = viewUser{tier: int32(v.defaultTier)}
		}
		v.users = append(v.users, quotaUser{id: id, label: label, tier: int(vu.tier)})
	})
	slices.SortFunc(v.users, func(a, b quotaUser) int {
		if c := strings.Compare(a.label, b.label); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for i := range v.users {
		qu := &v.users[i]
		qu.labels = newQuotaLabels(qu.label, names[qu.tier])
		vu := v.byID[qu.id]
		vu.tier, vu.labelled = int32(qu.tier), int32(i)
		v.byID[qu.id] = vu
	}
	for _, t := range names {
		v.other = append(v.other, newQuotaLabels(otherLabel, t))
	}
	return v
}

// quotas serves the ledger as the usage_quota_* series (a block of the
// /metrics handler), GET /api/v1/quotas and GET /api/v1/quotas/users, from
// the store's read model and the published view.
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

// usageRow is one labelled user's (or a tier's __other__) use this period.
type usageRow struct {
	labels *quotaLabels
	label  string
	tier   string
	usage  quota.Usage
	folded bool
}

// rows calls f with each labelled user's use of the period (users without
// use in it have no row), sorted by label, then __other__ per tier (when
// any), and returns how many users used the period.
func (q *quotas) rows(ctx context.Context, v *quotaView, f func(usageRow)) int {
	usage := q.store.Usage(ctx, v.period.ID)
	for i := range v.users {
		qu := &v.users[i]
		if u, ok := usage[qu.id]; ok {
			f(usageRow{labels: &qu.labels, label: qu.label, tier: v.tierNames[qu.tier], usage: u})
		}
	}
	other := make([]quota.Usage, len(v.tierNames))
	seen := make([]bool, len(v.tierNames))
	for id, u := range usage {
		vu, ok := v.byID[id]
		if ok && vu.labelled >= 0 {
			continue
		}
		t := v.defaultTier
		if ok {
			t = int(vu.tier)
		}
		if t < 0 || t >= len(other) {
			continue
		}
		other[t].Calls += u.Calls
		other[t].Tokens += u.Tokens
		seen[t] = true
	}
	for t := range other {
		if seen[t] {
			f(usageRow{labels: &v.other[t], label: otherLabel, tier: v.tierNames[t], usage: other[t], folded: true})
		}
	}
	return len(usage)
}

// WriteTo implements series.Block: the limits, the period, and the use of
// the current period by user (none per user under the dropped policy).
func (q *quotas) WriteTo(wr *series.Writer) {
	cfg := q.cfg.Load()
	wr.Family(quotaLimitName, quotaLimitHelp, series.Gauge)
	for _, t := range cfg.Plans.Tiers {
		for _, r := range resources {
			if l := limitOf(t, r); !l.IsUnlimited() {
				ls := series.NewLabels([]string{"tier", "resource"}, []string{t.Name, r})
				wr.Gauge(&ls, float64(l))
			}
		}
	}
	v := q.view.Load()
	if v == nil || v.period.ID == "" {
		return
	}
	var none series.Labels
	wr.Family(quotaPeriodName, quotaPeriodHelp, series.Gauge)
	wr.Gauge(&none, float64(v.period.Start.Unix()))
	wr.Family(quotaPeriodEndName, quotaPeriodEndHelp, series.Gauge)
	wr.Gauge(&none, float64(v.period.End.Unix()))
	if cfg.Users.Label == UserLabelDropped {
		return
	}
	begun := false
	var ratios []usageRow
	q.rows(context.Background(), v, func(r usageRow) {
		if !begun {
			wr.Family(quotaUsedName, quotaUsedHelp, series.Gauge)
			begun = true
		}
		wr.Gauge(&r.labels[0], float64(r.usage.Calls))
		wr.Gauge(&r.labels[1], float64(r.usage.Tokens))
		if cfg.Metrics.QuotaRatio && !r.folded {
			ratios = append(ratios, r)
		}
	})
	if len(ratios) == 0 {
		return
	}
	begun = false
	for _, r := range ratios {
		t, limited := cfg.Plans.Lookup(r.tier)
		if !limited {
			continue
		}
		for i, res := range resources {
			used := r.usage.Calls
			if i == 1 {
				used = r.usage.Tokens
			}
			if x := ratio(used, limitOf(t, res)); !math.IsNaN(x) {
				if !begun {
					wr.Family(quotaRatioName, quotaRatioHelp, series.Gauge)
					begun = true
				}
				wr.Gauge(&r.labels[i], x)
			}
		}
	}
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

// period resolves the period parameter of a request: the current one by
// default.
func (q *quotas) period(w http.ResponseWriter, r *http.Request, cfg *Config, v *quotaView) (quota.Period, bool) {
	ps, _ := quota.NewPeriods(cfg.Quota.Period)
	if id := r.URL.Query().Get("period"); id != "" {
		p, ok := ps.ByID(id)
		if !ok {
			admin.WriteJSON(w, http.StatusBadRequest, map[string]string{
				"error": "period must be the first day of a billing period, YYYY-MM-DD, e.g. " + ps.Of(q.now()).ID})
		}
		return p, ok
	}
	if v.period.ID == "" {
		return ps.Of(q.now()), true
	}
	return v.period, true
}

// ServeHTTP answers GET /api/v1/quotas?user=ID[&period=YYYY-MM-DD]. ID is
// the user id as the gateway logs it; under the hashed policy, the label
// value (the hash) is accepted too.
func (q *quotas) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := q.cfg.Load()
	user := r.URL.Query().Get("user")
	if user == "" {
		admin.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "the user parameter is required: /api/v1/quotas?user=ID"})
		return
	}
	v := q.view.Load()
	if v == nil {
		v = &quotaView{defaultTier: -1}
	}
	period, ok := q.period(w, r, cfg, v)
	if !ok {
		return
	}
	usage := q.store.Usage(r.Context(), period.ID)
	id := storedIDOf(cfg.Users, user)
	u, found := usage[id]
	if _, known := v.byID[id]; !found && !known && cfg.Users.Label == UserLabelHashed {
		if hu, ok := usage[user]; ok { // the hash itself
			id, u = user, hu
		} else if _, ok := v.byID[user]; ok {
			id = user
		}
	}
	tier := cfg.Plans.DefaultTier
	if t, ok := cfg.Plans.Users[user]; ok {
		tier = t
	}
	if vu, ok := v.byID[id]; ok && int(vu.tier) < len(v.tierNames) {
		tier = v.tierNames[vu.tier]
	}
	resp := quotaResponse{User: user, Tier: tier,
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

// usersResponse is GET /api/v1/quotas/users: the current period's use by
// labelled user, the rest per tier, as the usage_quota_used series show it.
type usersResponse struct {
	Period periodJSON  `json:"period"`
	Users  []userUsage `json:"users"`
	// Other is the use of the users without a label of their own, by tier.
	Other []userUsage `json:"other"`
	// Active is how many users used the period (labelled or not).
	Active int `json:"active_users"`
}

type userUsage struct {
	User   string `json:"user,omitempty"`
	Tier   string `json:"tier"`
	Calls  int64  `json:"calls"`
	Tokens int64  `json:"tokens"`
}

// serveUsers answers GET /api/v1/quotas/users: the optimizer's light read
// of quota use (instead of a scrape of every series).
func (q *quotas) serveUsers(w http.ResponseWriter, r *http.Request) {
	v := q.view.Load()
	if v == nil || v.period.ID == "" {
		admin.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "starting: no checkpoint yet"})
		return
	}
	resp := usersResponse{Period: periodJSON{ID: v.period.ID, Start: v.period.Start, End: v.period.End},
		Users: make([]userUsage, 0, len(v.users)), Other: []userUsage{}}
	resp.Active = q.rows(r.Context(), v, func(row usageRow) {
		uu := userUsage{User: row.label, Tier: row.tier, Calls: row.usage.Calls, Tokens: row.usage.Tokens}
		if row.folded {
			uu.User = ""
			resp.Other = append(resp.Other, uu)
			return
		}
		resp.Users = append(resp.Users, uu)
	})
	admin.WriteJSON(w, http.StatusOK, resp)
}
