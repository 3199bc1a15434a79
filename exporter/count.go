package exporter

import (
	"strconv"

	"github.com/usage-exporter/usage-exporter/exporter/classify"
	"github.com/usage-exporter/usage-exporter/exporter/series"
)

// counter is the count stage: it applies calls to the series. It caches
// the series it touches, so that a call costs slice indexing, small-map
// lookups and atomic adds, never a label-set hash in client_golang. Not
// safe for concurrent use.
type counter struct {
	m        *Metrics
	egressGB float64 // dollars per 10^9 response bytes
	services []*serviceSeries
	routes   map[routeKey]*routeSeries
	users    []*userSeries // by userLabels slot
	orgs     []*orgSeries  // by the organisations' slot
	orgNames *userLabels
	models   []*modelSeries
	teams    map[string]*series.Series
	keys     map[string]*series.Series
	tiers    []string
	// costByService: usage_user_cost_dollars_total has api_service.
	costByService bool
	codes         [600]string
	labels        *userLabels
	table         *modelTable
	noModel       *series.Series // unpriced{model="",reason="no_model"}
	rollups       *rollupIDs     // nil without rollups
}

type serviceSeries struct {
	name          string
	responseBytes *series.Series
	duplicates    *series.Series
	egress        *series.Series
	perCallCost   *series.Series // cost{api_service, model=""}; nil without a per-call price
}

type routeKey struct {
	route   *classify.Route
	service int
}

type routeSeries struct {
	route    string
	duration *series.Series
	requests map[uint32]*series.Series // method index << 16 | status
	rollup   int32                     // id in the rollups; -1 until known
}

type userSeries struct {
	label    string
	rollup   int32                     // id in the rollups; -1 until known
	requests map[uint32]*series.Series // tier << 16 | service
	cost     map[uint32]*series.Series // tier << 16 | service (0xffff unsplit)
	tokens   map[int]*series.Series    // tier
}

// orgSeries caches the series of one organisation label: by kind
// (orgRequests, orgCost), then service.
type orgSeries struct {
	label  string
	series [2]map[int]*series.Series
}

// The kinds of an organisation's series.
const (
	orgRequests = iota
	orgCost
)

// modelSeries caches the series of one model label.
type modelSeries struct {
	label         string
	success       *series.Series
	failure       *series.Series
	tokens        [5]*series.Series // in tokenDirections order
	requestTokens *series.Series
	cost          map[int]*series.Series // by service
	unpriced      map[string]*series.Series
	rollup        []int32 // ids in the rollups, by service; -1 until known
}

func newCounter(cfg *Config, m *Metrics, a *attributor) *counter {
	c := &counter{m: m, egressGB: cfg.Pricing.EgressPerGB, routes: map[routeKey]*routeSeries{},
		teams: map[string]*series.Series{}, keys: map[string]*series.Series{},
		tiers: a.tiers.Names(), labels: a.users, orgNames: a.orgs, table: a.models, costByService: cfg.Metrics.UserCostByService}
	for i, name := range a.classifier.Services() {
		ss := &serviceSeries{
			name:          name,
			responseBytes: m.responseBytes.With(name),
			duplicates:    m.duplicates.With(name),
			egress:        m.egress.With(name),
		}
		if a.perCall[i] > 0 {
			ss.perCallCost = m.cost.With(name, "")
		}
		c.services = append(c.services, ss)
	}
	for i := range c.codes {
		if i >= 100 {
			c.codes[i] = strconv.Itoa(i)
		}
	}
	return c
}

// count updates the series for one call.
func (c *counter) count(cl *call, ev *event) {
	rs := c.route(cl.route, cl.svc)
	key := uint32(ev.method)<<16 | uint32(ev.status)
	rc, ok := rs.requests[key]
	if !ok {
		name := otherMethod
		if int(ev.method) < len(knownMethods) {
			name = knownMethods[ev.method]
		}
		rc = c.m.requests.With(c.services[cl.svc].name, rs.route, name, c.codes[ev.status])
		rs.requests[key] = rc
	}
	rc.Inc()
	if ev.hasDuration {
		rs.duration.Observe(ev.duration)
	}
	ss := c.services[cl.svc]
	if ev.size > 0 {
		ss.responseBytes.Add(float64(ev.size))
		if c.egressGB > 0 {
			ss.egress.Add(float64(ev.size) * c.egressGB / 1e9)
		}
	}
	us := c.user(cl.user)
	c.userRequests(us, cl.tier, cl.svc).Inc()
	c.orgAdd(cl.org, cl.svc, orgRequests, 1)
	switch {
	case cl.model >= 0:
		c.modelCall(cl, ev.status >= 400, us)
	case cl.cost > 0:
		ss.perCallCost.Add(cl.cost)
		c.userCost(us, cl.tier, cl.svc).Add(cl.cost)
		c.orgAdd(cl.org, cl.svc, orgCost, cl.cost)
	case cl.unpriced != "":
		if c.noModel == nil {
			c.noModel = c.m.unpriced.With("", cl.unpriced)
		}
		c.noModel.Inc()
	}
	if cl.duplicate {
		ss.duplicates.Inc()
	}
	if c.rollups != nil {
		c.rollup(cl, ev, rs, us)
	}
}

// modelCall counts a priced (or unpriced) model call.
func (c *counter) modelCall(cl *call, failed bool, us *userSeries) {
	ms := c.model(cl.model)
	if failed {
		ms.failure.Inc()
	} else {
		ms.success.Inc()
	}
	if cl.hasTokens {
		ch := &cl.charge
		for i, n := range [...]int64{ch.Input, ch.Output, ch.CacheRead, ch.CacheWrite + ch.CacheWrite1h, ch.Reasoning} {
			if n > 0 {
				ms.tokens[i].Add(float64(n))
			}
		}
		if cl.tokens > 0 {
			c.userTokens(us, cl.tier).Add(float64(cl.tokens))
		}
		ms.requestTokens.Observe(float64(ch.Prompt()))
	}
	if cl.unpriced != "" {
		c.unpricedFor(ms, cl.unpriced).Inc()
		return
	}
	if cl.cost > 0 {
		c.modelCost(ms, cl.svc).Add(cl.cost)
		c.userCost(us, cl.tier, cl.svc).Add(cl.cost)
		c.orgAdd(cl.org, cl.svc, orgCost, cl.cost)
	}
}

func (c *counter) route(route *classify.Route, svc int) *routeSeries {
	k := routeKey{route: route, service: svc}
	rs, ok := c.routes[k]
	if !ok {
		rs = &routeSeries{
			rollup:   -1,
			route:    route.Label,
			duration: c.m.duration.With(c.services[svc].name, route.Label),
			requests: map[uint32]*series.Series{},
		}
		c.routes[k] = rs
	}
	return rs
}

// user returns the series of a userLabels slot.
func (c *counter) user(slot int) *userSeries {
	for len(c.users) <= slot {
		c.users = append(c.users, nil)
	}
	us := c.users[slot]
	if us == nil {
		us = &userSeries{label: c.labels.label(slot), rollup: -1, requests: map[uint32]*series.Series{},
			cost: map[uint32]*series.Series{}, tokens: map[int]*series.Series{}}
		c.users[slot] = us
	}
	return us
}

// orgAdd adds v to an organisation's series of a kind for a service; slot
// -1 is no organisation.
func (c *counter) orgAdd(slot, svc, kind int, v float64) {
	if slot < 0 {
		return
	}
	for len(c.orgs) <= slot {
		c.orgs = append(c.orgs, nil)
	}
	o := c.orgs[slot]
	if o == nil {
		o = &orgSeries{label: c.orgNames.label(slot), series: [2]map[int]*series.Series{{}, {}}}
		c.orgs[slot] = o
	}
	s, ok := o.series[kind][svc]
	if !ok {
		s = [2]*series.Family{c.m.orgRequests, c.m.orgCost}[kind].With(o.label, c.services[svc].name)
		o.series[kind][svc] = s
	}
	s.Add(v)
}

// dropOrgs removes the series of organisations that lost their label (see
// userLabels.rebalance) and forgets the slots that held them.
func (c *counter) dropOrgs(labels []string) {
	gone := labelSet(labels)
	c.m.dropOrgs(func(label string) bool { return gone[label] })
	forgetSlots(c.orgs, func(o *orgSeries) string { return o.label }, gone)
}

// dropUsers removes the series of users who lost their label (see
// userLabels.rebalance) and forgets the slots that held them.
func (c *counter) dropUsers(labels []string) {
	gone := labelSet(labels)
	c.m.dropUsers(func(label string) bool { return gone[label] })
	forgetSlots(c.users, func(us *userSeries) string { return us.label }, gone)
}

func labelSet(labels []string) map[string]bool {
	gone := make(map[string]bool, len(labels))
	for _, l := range labels {
		gone[l] = true
	}
	return gone
}

// forgetSlots empties the slots, past the fixed ones, whose label went.
func forgetSlots[T any](slots []*T, label func(*T) string, gone map[string]bool) {
	for slot, s := range slots {
		if s != nil && slot >= firstUser && gone[label(s)] {
			slots[slot] = nil
		}
	}
}

func (c *counter) userRequests(us *userSeries, tier, svc int) *series.Series {
	return c.userService(us.requests, c.m.userRequests, us.label, tier, svc)
}

func (c *counter) userCost(us *userSeries, tier, svc int) *series.Series {
	if c.costByService {
		return c.userService(us.cost, c.m.userCost, us.label, tier, svc)
	}
	k := uint32(tier)<<16 | 0xffff
	uc, ok := us.cost[k]
	if !ok {
		uc = c.m.userCost.With(us.label, c.tiers[tier])
		us.cost[k] = uc
	}
	return uc
}

// userService is the series of vec for a user, tier and service, cached.
func (c *counter) userService(cache map[uint32]*series.Series, vec *series.Family, label string, tier, svc int) *series.Series {
	k := uint32(tier)<<16 | uint32(svc)
	uc, ok := cache[k]
	if !ok {
		uc = vec.With(label, c.tiers[tier], c.services[svc].name)
		cache[k] = uc
	}
	return uc
}

func (c *counter) userTokens(us *userSeries, tier int) *series.Series {
	uc, ok := us.tokens[tier]
	if !ok {
		uc = c.m.userTokens.With(us.label, c.tiers[tier])
		us.tokens[tier] = uc
	}
	return uc
}

// model returns the series of a model number, creating them (and the price
// series of the model) at its first call.
func (c *counter) model(i int) *modelSeries {
	for len(c.models) <= i {
		c.models = append(c.models, nil)
	}
	if ms := c.models[i]; ms != nil {
		return ms
	}
	mi := c.table.models[i]
	ms := &modelSeries{
		label:         mi.label,
		success:       c.m.llmRequests.With(mi.label, "success"),
		failure:       c.m.llmRequests.With(mi.label, "failure"),
		requestTokens: c.m.llmRequestTokens.With(mi.label),
		cost:          map[int]*series.Series{},
		unpriced:      map[string]*series.Series{},
	}
	for d, name := range tokenDirections {
		ms.tokens[d] = c.m.llmTokens.With(mi.label, name)
	}
	if mi.entry != nil {
		// Prices as series, for the models in use: traffic can be priced on
		// another model with one PromQL join.
		c.m.priceMatch.WithLabelValues(mi.label, mi.key).Set(1)
		for tokenType, v := range mi.entry.PerToken() {
			c.m.price.WithLabelValues(mi.label, tokenType).Set(v)
		}
	}
	c.models[i] = ms
	return ms
}

func (c *counter) modelCost(ms *modelSeries, svc int) *series.Series {
	mc, ok := ms.cost[svc]
	if !ok {
		mc = c.m.cost.With(c.services[svc].name, ms.label)
		ms.cost[svc] = mc
	}
	return mc
}

func (c *counter) unpricedFor(ms *modelSeries, reason string) *series.Series {
	u, ok := ms.unpriced[reason]
	if !ok {
		u = c.m.unpriced.With(ms.label, reason)
		ms.unpriced[reason] = u
	}
	return u
}

// labelCounter caches the counter of one label value of a single-label vector.
func labelCounter(cache map[string]*series.Series, vec *series.Family, value string) *series.Series {
	lc, ok := cache[value]
	if !ok {
		lc = vec.With(value)
		cache[value] = lc
	}
	return lc
}
