package exporter

import (
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/classify"
	"github.com/usage-exporter/usage-exporter/exporter/dedup"
	"github.com/usage-exporter/usage-exporter/exporter/series"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// Reasons of usage_exporter_unpriced_requests_total.
const (
	unpricedUnknownModel = "unknown_model"
	unpricedNoTokens     = "no_tokens"
	// A call of the model service (litellm.api_service) that names no model
	// and carries no tokens or cost (an nginx line), with no per-call price
	// for the service.
	unpricedNoModel = "no_model"
)

// call is one request as the count and ledger stages see it: classified,
// its user and tier resolved, and priced.
type call struct {
	route    *classify.Route
	svc      int
	user     int    // slot in userLabels
	org      int    // slot in the organisations' labels; -1 without one
	stored   string // the user's id as the ledger keeps it; empty for anonymous requests
	userHash uint64 // of stored
	tier     int
	at       time.Time // the line's time, or when it was read
	// A model call counted here has model >= 0; its tokens in disjoint
	// buckets (when hasTokens), and the reason it is unpriced, if it is.
	model     int
	charge    pricing.Charge
	hasTokens bool
	tokens    int64 // every token billed
	unpriced  string
	// cost is the call's dollars: the model's price of its tokens, a logged
	// cost, or the service's per-call price (model < 0).
	cost      float64
	duplicate bool
}

// attributor is the classify-and-price stage: it finds each request's
// api_service and route, its user's label and tier, its model and price,
// and whether it repeats an earlier request. Not safe for concurrent use.
type attributor struct {
	classifier    *classify.Classifier
	perCall       []float64 // dollars per successful call, by service
	modelService  int       // the service whose calls are model calls; -1 if none
	spend         []bool    // by source: price its model calls
	users         *userLabels
	orgs          *userLabels // nil under orgs.label: dropped
	tiers         *plans.Resolver
	models        *modelTable
	dups          *dedup.Window
	dupConfig     dedup.Config
	routeOverflow []*series.Series // by service
	now           func() time.Time
}

// newAttributor builds the stage of cfg, continuing the user labels of the
// pipeline before (nil for none).
func newAttributor(cfg *Config, m *Metrics, prices *pricing.Table, tiers *plans.Resolver, users, orgs *userLabels) (*attributor, error) {
	cc := cfg.Classify
	cc.MaxRouteBytes = cfg.Labels.MaxBytes
	cl, err := classify.New(cc)
	if err != nil {
		return nil, err
	}
	a := &attributor{classifier: cl, tiers: tiers, dupConfig: cfg.Duplicates, now: time.Now, modelService: -1,
		users:  users.reuse(cfg.Users, m.seriesOverflow.With(overflowUser, "")),
		models: newModelTable(prices, cfg.Pricing.MaxModels, m.seriesOverflow.With(overflowModel, ""))}
	if cfg.Orgs.Label != UserLabelDropped {
		a.orgs = orgs.reuse(cfg.Orgs.users(), m.seriesOverflow.With(overflowOrg, ""))
	}
	for i, name := range cl.Services() {
		a.perCall = append(a.perCall, max(cfg.Pricing.PerCall[name], 0))
		if name == cfg.LiteLLM.APIService {
			a.modelService = i
		}
		// Whose route cap overflowed: each service has its own.
		a.routeOverflow = append(a.routeOverflow, m.seriesOverflow.With(overflowRoute, name))
	}
	for _, src := range cfg.Logs.Sources {
		a.spend = append(a.spend, src.ModelSpend(cfg.LiteLLM))
	}
	return a, nil
}

// attribute fills c for ev; false when the request is filtered out.
func (a *attributor) attribute(eb *eventBatch, ev *event, c *call) bool {
	route := a.classifier.Route(eb.bytes(ev.path))
	if route.Ignored {
		return false
	}
	if route.Overflow {
		a.routeOverflow[route.Service].Inc()
	}
	*c = call{route: route, svc: route.Service, model: -1}
	if ev.service >= 0 {
		c.svc = int(ev.service)
	}
	a.user(c, eb.bytes(ev.user), eb.bytes(ev.tier), 1)
	c.org = a.org(eb.bytes(ev.org), 1)
	if ev.unixNano != 0 {
		c.at = time.Unix(0, ev.unixNano)
	} else {
		c.at = a.now()
	}
	switch {
	case ev.modelCall():
		if a.spend[eb.source] {
			a.price(eb, ev, c)
		}
	case ev.status < 400:
		c.cost = a.perCall[c.svc]
		// A model call the line says nothing about: not free, unpriced,
		// unless the service has a per-call price.
		if c.cost == 0 && c.svc == a.modelService && a.spend[eb.source] {
			c.unpriced = unpricedNoModel
		}
	}
	if ev.cacheKey.n > 0 {
		if a.dups == nil {
			a.dups = dedup.New(a.dupConfig)
		}
		c.duplicate = a.dups.Seen(a.classifier.Services()[c.svc], eb.bytes(ev.cacheKey), c.at)
	}
	return true
}

// user resolves a call's user: their slot, stored id and tier; traffic is
// what the call weighs in the choice of labelled users.
func (a *attributor) user(c *call, user, lineTier []byte, traffic float64) {
	if len(user) == 0 {
		c.user, c.stored, c.userHash, c.tier = userAnonymous, "", 0, a.tiers.Anonymous()
		return
	}
	slot, e := a.users.index(user, traffic)
	if e == nil { // forgotten: counted, attributed to no one
		c.user, c.stored, c.userHash, c.tier = slot, "", 0, a.tiers.Anonymous()
		return
	}
	c.user, c.stored, c.userHash, c.tier = slot, e.Key, e.Value.hash, a.tiers.Resolve(user, lineTier)
}

// org is the slot of an organisation id, -1 for none (or orgs.label: dropped).
func (a *attributor) org(id []byte, traffic float64) int {
	if len(id) == 0 || a.orgs == nil {
		return -1
	}
	slot, _ := a.orgs.index(id, traffic)
	return slot
}

// price prices a model call from the logs: a logged cost is taken as it
// is; otherwise the tokens are priced on the model's entry, following its
// provider's token convention. A call that cannot be priced is counted as
// unpriced, never as free; its tokens are counted anyway.
func (a *attributor) price(eb *eventBatch, ev *event, c *call) {
	c.model = a.models.index(eb.bytes(ev.model))
	mi := &a.models.models[c.model]
	if mi.entry != nil {
		c.charge = mi.entry.Charge(mi.key, ev.tokens)
	} else {
		c.charge = pricing.Buckets(ev.tokens, pricing.ConventionOpenAI)
	}
	if c.hasTokens = ev.hasTokens; c.hasTokens {
		ch := &c.charge
		c.tokens = ch.Input + ch.Output + ch.CacheRead + ch.CacheWrite + ch.CacheWrite1h + ch.Reasoning
	}
	switch {
	case !ev.hasTokens && !ev.hasCost && ev.status >= 400:
		// A failed call without usage cost nothing.
	case ev.hasCost:
		c.cost = ev.cost
	case mi.entry != nil && ev.hasTokens:
		c.cost = c.charge.Cost
	case mi.entry == nil:
		c.unpriced = unpricedUnknownModel
	default:
		c.unpriced = unpricedNoTokens
	}
}

// modelInfo is one model label and the price it matched.
type modelInfo struct {
	label string
	key   string         // the price table key it matched
	entry *pricing.Entry // nil when unpriced
}

// modelTable numbers model names, folding those beyond the cap into one
// __other__ model. Not safe for concurrent use.
type modelTable struct {
	prices   *pricing.Table
	byName   map[string]int
	models   []modelInfo
	max      int
	other    int // -1 until needed
	overflow *series.Series
}

func newModelTable(prices *pricing.Table, maxModels int, overflow *series.Series) *modelTable {
	return &modelTable{prices: prices, byName: map[string]int{}, max: maxModels, other: -1, overflow: overflow}
}

var unknownModel = []byte("unknown")

// index returns the number of a model name.
func (t *modelTable) index(name []byte) int {
	if len(name) == 0 {
		name = unknownModel
	}
	if i, ok := t.byName[string(name)]; ok {
		return i
	}
	if len(t.byName) >= t.max {
		t.overflow.Inc()
		if t.other < 0 {
			t.other = len(t.models)
			t.models = append(t.models, modelInfo{label: otherLabel})
		}
		return t.other
	}
	mi := modelInfo{label: string(name)}
	if key, e, ok := t.prices.Lookup(mi.label); ok {
		mi.key, mi.entry = key, e
	}
	i := len(t.models)
	t.models = append(t.models, mi)
	t.byName[mi.label] = i
	return i
}
