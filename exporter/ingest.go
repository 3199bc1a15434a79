package exporter

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/classify"
	"github.com/usage-exporter/usage-exporter/exporter/dedup"
	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/exporter/plans"
	"github.com/usage-exporter/usage-exporter/exporter/pricing"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
)

// Label values the exporter itself introduces.
const (
	otherLabel     = "__other__"
	anonymousLabel = "__anonymous__"
	otherMethod    = "other"
)

var knownMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"}

// The push path runs in two goroutines, so that parsing and metric updates
// use both cores: the decoder parses lines into compact events, the
// ingester classifies them and applies them to the series. Each owns its
// state alone: the decoder the parsers, the ingester the classifier (and its
// route cap), the series caches, the user cap, the duplicate window and the
// read positions.

// event is one request, decoded. Strings live in the batch's arena, so the
// log data can be reused as soon as the decoder is done with it.
type event struct {
	path        span
	service     int16 // the service the line names, or -1
	method      uint16
	status      uint16
	hasDuration bool
	duration    float64
	size        int64
	unixNano    int64 // 0 when the line had no time
	user        span
	tier        span
	cacheKey    span
	// A model call: the line names a model or carries tokens or a cost.
	model     span
	tokens    pricing.Usage
	hasTokens bool
	cost      float64
	hasCost   bool
}

// modelCall reports whether the event is a model call, to be priced by tokens.
func (ev *event) modelCall() bool { return ev.model.n > 0 || ev.hasTokens || ev.hasCost }

// span is a string in an eventBatch's arena.
type span struct{ off, n uint32 }

// eventBatch is the decoded form of one tailer batch.
type eventBatch struct {
	source  int
	pos     tailer.Position
	retire  bool
	events  []event
	arena   []byte
	invalid int
	newest  float64 // newest line time, unix seconds
	oldest  float64 // oldest line time, unix seconds; 0 for none
}

func (eb *eventBatch) put(b []byte) span {
	s := span{off: uint32(len(eb.arena)), n: uint32(len(b))}
	eb.arena = append(eb.arena, b...)
	return s
}

func (eb *eventBatch) bytes(s span) []byte { return eb.arena[s.off : s.off+s.n] }

var eventBatches = sync.Pool{New: func() any { return &eventBatch{} }}

func getEventBatch() *eventBatch {
	eb := eventBatches.Get().(*eventBatch)
	eb.events, eb.arena = eb.events[:0], eb.arena[:0]
	eb.invalid, eb.newest, eb.oldest, eb.retire = 0, 0, 0, false
	return eb
}

func putEventBatch(eb *eventBatch) { eventBatches.Put(eb) }

// decoder parses lines. Not safe for concurrent use.
type decoder struct {
	cfg      *Config
	log      *slog.Logger
	services []string
	sources  []*sourceDecoder
	rec      logparse.Record
	now      func() time.Time
}

type sourceDecoder struct {
	name       string
	parser     logparse.Parser
	errors     map[logparse.Reason]prometheus.Counter
	lastLog    time.Time
	suppressed int
}

func newDecoder(cfg *Config, m *Metrics, services []string, log *slog.Logger) (*decoder, error) {
	d := &decoder{cfg: cfg, log: log, services: services, now: time.Now}
	for _, src := range cfg.Logs.Sources {
		p, err := logparse.New(src.Config)
		if err != nil {
			return nil, err
		}
		sd := &sourceDecoder{name: src.Path, parser: p, errors: map[logparse.Reason]prometheus.Counter{}}
		m.initSource(src.Path)
		for _, r := range logparse.Reasons {
			sd.errors[r] = m.logLineErrors.WithLabelValues(src.Path, string(r))
		}
		d.sources = append(d.sources, sd)
	}
	return d, nil
}

// decode turns the lines of b into events.
func (d *decoder) decode(b *tailer.Batch) *eventBatch {
	eb := getEventBatch()
	eb.source, eb.pos, eb.retire = b.Source, b.Pos, b.Retire
	src := d.sources[b.Source]
	maxLine := d.cfg.Logs.MaxLineBytes
	rec := &d.rec
	data := b.Data
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			nl = len(data) // the tailer hands on whole lines; be safe anyway
		}
		line := data[:nl]
		data = data[min(nl+1, len(data)):]
		if len(line) > maxLine {
			eb.invalid++
			d.reject(src, line, logparse.ErrTooLong)
			continue
		}
		if err := src.parser.Parse(line, rec); err != nil {
			eb.invalid++
			d.reject(src, line, err)
			continue
		}
		svc := -1
		if len(rec.Service) > 0 {
			for i, name := range d.services {
				if name == string(rec.Service) {
					svc = i
				}
			}
		}
		eb.events = append(eb.events, event{
			path:        eb.put(rec.Path),
			service:     int16(svc),
			method:      uint16(methodIndex(rec.Method)),
			status:      uint16(rec.Status),
			hasDuration: rec.HasDuration,
			duration:    rec.Duration,
			size:        rec.Size,
			user:        eb.put(rec.User),
			tier:        eb.put(rec.Tier),
			cacheKey:    eb.put(rec.CacheKey),
			model:       eb.put(rec.Model),
			tokens: pricing.Usage{Input: rec.InputTokens, Output: rec.OutputTokens, CacheRead: rec.CacheReadTokens,
				CacheWrite: rec.CacheWriteTokens, Reasoning: rec.ReasoningTokens},
			hasTokens: rec.HasTokens,
			cost:      rec.Cost,
			hasCost:   rec.HasCost,
		})
		if !rec.Time.IsZero() {
			ns := rec.Time.UnixNano()
			eb.events[len(eb.events)-1].unixNano = ns
			ts := float64(ns/1e6) / 1e3
			if ts > eb.newest {
				eb.newest = ts
			}
			if ts < eb.oldest || eb.oldest == 0 {
				eb.oldest = ts
			}
		}
	}
	if b.Dropped > 0 {
		eb.invalid += b.Dropped
		src.errors[logparse.ReasonTooLong].Add(float64(b.Dropped))
	}
	return eb
}

// reject counts a bad line and logs it, at most once per interval per source.
func (d *decoder) reject(src *sourceDecoder, line []byte, err error) {
	src.errors[logparse.ReasonOf(err)].Inc()
	now := d.now()
	if now.Sub(src.lastLog) < d.cfg.Logs.InvalidLogInterval {
		src.suppressed++
		return
	}
	const maxShown = 256
	shown := line
	if len(shown) > maxShown {
		shown = shown[:maxShown]
	}
	d.log.Warn("invalid log line", "source", src.name, "err", err, "line", string(shown),
		"suppressed_since_last", src.suppressed)
	src.lastLog, src.suppressed = now, 0
}

// ingester applies events to the series. It caches the series it touches,
// so that an event costs map lookups and atomic adds, never a label-set
// hash in client_golang. Not safe for concurrent use.
type ingester struct {
	cfg        *Config
	m          *Metrics
	classifier *classify.Classifier
	services   []*serviceSeries
	sources    []*sourceState
	routes     map[routeKey]*routeSeries
	users      map[string]*userSeries
	overflowU  *userSeries
	anonymous  *userSeries
	dropped    *userSeries // every user, under the dropped label policy
	tiers      []string
	tierIndex  map[string]int
	userTiers  map[string]int
	defaultT   int
	dups       *dedup.Window
	codes      [600]string
	now        func() time.Time

	prices     *pricing.Table
	models     map[string]*modelSeries // by model name as logged or reported
	otherModel *modelSeries            // models beyond pricing.max_models, made when first needed
	llmService int                     // the api_service LiteLLM spend goes to
	teams      map[string]prometheus.Counter
	keys       map[string]prometheus.Counter
	// litellm holds LiteLLM's counters as last applied, to take deltas from.
	litellm *litellm.Counters
	// ls is the usage ledger; redisTiers the Redis tier cache (nil without Redis).
	ls         *ledgerState
	redisTiers *redisTiers
	tierOrder  []string
	quota      *quotaState

	userOverflow, routeOverflow, modelOverflow prometheus.Counter
	// positions holds the position after the last processed batch of each file.
	positions map[tailer.FileID]tailer.Position
}

type serviceSeries struct {
	name          string
	responseBytes prometheus.Counter
	duplicates    prometheus.Counter
	egress        prometheus.Counter
	perCall       float64            // dollars per successful call; 0 for none
	perCallCost   prometheus.Counter // cost{api_service, model=""}
}

type sourceState struct {
	modelSpend    bool // price this source's model calls
	parsed        prometheus.Counter
	invalid       prometheus.Counter
	filtered      prometheus.Counter
	lastTime      prometheus.Gauge
	lastTimeValue float64
	path          string
	firstTime     prometheus.Gauge
}

type routeKey struct {
	route   *classify.Route
	service int
}

type routeSeries struct {
	route    string
	duration prometheus.Observer
	requests map[uint32]prometheus.Counter // method index << 16 | status
}

type userSeries struct {
	label    string
	requests map[uint32]prometheus.Counter // tier << 16 | service
	cost     map[uint32]prometheus.Counter // tier << 16 | service
	tokens   map[int]prometheus.Counter    // tier
}

func newUserSeries(label string) *userSeries {
	return &userSeries{label: label, requests: map[uint32]prometheus.Counter{}, cost: map[uint32]prometheus.Counter{},
		tokens: map[int]prometheus.Counter{}}
}

// newIngester prepares the classifier and the series of cfg.
func newIngester(cfg *Config, m *Metrics, prices *pricing.Table) (*ingester, error) {
	cl, err := classify.New(cfg.Classify)
	if err != nil {
		return nil, err
	}
	in := &ingester{
		cfg: cfg, m: m, classifier: cl, prices: prices,
		models:        map[string]*modelSeries{},
		teams:         map[string]prometheus.Counter{},
		keys:          map[string]prometheus.Counter{},
		modelOverflow: m.seriesOverflow.WithLabelValues(overflowModel),
		routeOverflow: m.seriesOverflow.WithLabelValues(overflowRoute),
		routes:        map[routeKey]*routeSeries{},
		users:         map[string]*userSeries{},
		tierIndex:     map[string]int{},
		userTiers:     map[string]int{},
		positions:     map[tailer.FileID]tailer.Position{},
		now:           time.Now,
		userOverflow:  m.seriesOverflow.WithLabelValues(overflowUser),
	}
	for i, name := range cl.Services() {
		ss := &serviceSeries{
			name:          name,
			responseBytes: m.responseBytes.WithLabelValues(name),
			duplicates:    m.duplicates.WithLabelValues(name),
			egress:        m.egress.WithLabelValues(name),
		}
		if p, ok := cfg.Pricing.PerCall[name]; ok && p > 0 {
			ss.perCall, ss.perCallCost = p, m.cost.WithLabelValues(name, "")
		}
		in.services = append(in.services, ss)
		if name == cfg.LiteLLM.APIService {
			in.llmService = i
		}
	}
	for _, src := range cfg.Logs.Sources {
		in.sources = append(in.sources, &sourceState{
			modelSpend: src.ModelSpend(cfg.LiteLLM),
			parsed:     m.logLines.WithLabelValues(src.Path, resultParsed),
			invalid:    m.logLines.WithLabelValues(src.Path, resultInvalid),
			filtered:   m.logLines.WithLabelValues(src.Path, resultFiltered),
			lastTime:   m.logLastTime.WithLabelValues(src.Path),
			path:       src.Path,
			firstTime:  m.logFirstTime.WithLabelValues(src.Path),
		})
	}
	in.tiers = append(cfg.Plans.Names(), plans.AnonymousTier)
	for i, t := range in.tiers {
		in.tierIndex[t] = i
	}
	in.defaultT = in.tierIndex[cfg.Plans.DefaultTier]
	for u, t := range cfg.Plans.Users {
		in.userTiers[u] = in.tierIndex[t]
	}
	if err := in.initLedger(cfg.Redis.Enabled()); err != nil {
		return nil, err
	}
	in.tierOrder = cfg.Quota.TierSources
	in.overflowU = newUserSeries(otherLabel)
	in.anonymous = newUserSeries(anonymousLabel)
	in.dropped = newUserSeries("")
	for i := range in.codes {
		if i >= 100 {
			in.codes[i] = strconv.Itoa(i)
		}
	}
	return in, nil
}

// ingest applies a decoded batch and records its end position.
func (in *ingester) ingest(eb *eventBatch) {
	filtered := 0
	for i := range eb.events {
		if !in.observe(eb, &eb.events[i]) {
			filtered++
		}
	}
	src := in.sources[eb.source]
	src.parsed.Add(float64(len(eb.events) - filtered))
	src.invalid.Add(float64(eb.invalid))
	src.filtered.Add(float64(filtered))
	if eb.newest > src.lastTimeValue {
		src.lastTimeValue = eb.newest
		src.lastTime.Set(eb.newest)
	}
	if first, ok := in.m.firstTimes[src.path]; eb.oldest != 0 && (!ok || eb.oldest < first) {
		in.m.firstTimes[src.path] = eb.oldest
		src.firstTime.Set(eb.oldest)
	}
	if eb.retire {
		delete(in.positions, eb.pos.FileID)
	} else {
		in.positions[eb.pos.FileID] = eb.pos
	}
	if in.dups != nil && in.dups.Evicted > 0 {
		in.m.dedupEvictions.Add(float64(in.dups.Evicted))
		in.dups.Evicted = 0
	}
}

// observe updates the series for one request; false if it is filtered out.
func (in *ingester) observe(eb *eventBatch, ev *event) bool {
	route := in.classifier.Route(eb.bytes(ev.path))
	if route.Ignored {
		return false
	}
	if route.Overflow {
		in.routeOverflow.Inc()
	}
	svc := route.Service
	if ev.service >= 0 {
		svc = int(ev.service)
	}
	rs := in.routeSeries(route, svc)
	key := uint32(ev.method)<<16 | uint32(ev.status)
	c, ok := rs.requests[key]
	if !ok {
		name := otherMethod
		if int(ev.method) < len(knownMethods) {
			name = knownMethods[ev.method]
		}
		c = in.m.requests.WithLabelValues(in.services[svc].name, rs.route, name, in.codes[ev.status])
		rs.requests[key] = c
	}
	c.Inc()
	if ev.hasDuration {
		rs.duration.Observe(ev.duration)
	}
	ss := in.services[svc]
	if ev.size > 0 {
		ss.responseBytes.Add(float64(ev.size))
	}
	us, tier := in.user(eb.bytes(ev.user), eb.bytes(ev.tier))
	ukey := uint32(tier)<<16 | uint32(svc)
	uc, ok := us.requests[ukey]
	if !ok {
		uc = in.m.userRequests.WithLabelValues(us.label, in.tiers[tier], ss.name)
		us.requests[ukey] = uc
	}
	uc.Inc()
	var tokens int64
	if ev.modelCall() {
		if in.sources[eb.source].modelSpend {
			tokens = in.modelCall(eb, ev, svc, us, tier)
		}
	} else if ss.perCall > 0 && ev.status < 400 {
		ss.perCallCost.Add(ss.perCall)
		in.userCost(us, tier, svc).Add(ss.perCall)
	}
	if ev.size > 0 && in.cfg.Pricing.EgressPerGB > 0 {
		ss.egress.Add(float64(ev.size) * in.cfg.Pricing.EgressPerGB / 1e9)
	}
	at := in.now()
	if ev.unixNano != 0 {
		at = time.Unix(0, ev.unixNano)
	}
	if user := eb.bytes(ev.user); len(user) > 0 {
		in.countUsage(user, at, 1, tokens)
	}
	if ev.cacheKey.n > 0 {
		if in.dups == nil {
			in.dups = dedup.New(in.cfg.Duplicates)
		}
		if in.dups.Seen(ss.name, eb.bytes(ev.cacheKey), at) {
			ss.duplicates.Inc()
		}
	}
	return true
}

func (in *ingester) routeSeries(route *classify.Route, svc int) *routeSeries {
	k := routeKey{route: route, service: svc}
	rs, ok := in.routes[k]
	if !ok {
		rs = &routeSeries{
			route:    route.Label,
			duration: in.m.duration.WithLabelValues(in.services[svc].name, route.Label),
			requests: map[uint32]prometheus.Counter{},
		}
		in.routes[k] = rs
	}
	return rs
}

func methodIndex(m []byte) int {
	for i, k := range knownMethods {
		if string(m) == k {
			return i
		}
	}
	return len(knownMethods)
}

// user returns the series of the line's user, applying the label policy and
// the user cap, and the user's tier index: from the first of
// quota.tier_sources that knows it (the line's tier field, Redis, the
// configuration), else the default tier.
func (in *ingester) user(user, lineTier []byte) (*userSeries, int) {
	if len(user) == 0 {
		return in.anonymous, len(in.tiers) - 1
	}
	tier := in.tierFor(user, lineTier)
	in.rememberTier(user, tier)
	if in.cfg.Users.Label == UserLabelDropped {
		return in.dropped, tier
	}
	if us, ok := in.users[string(user)]; ok {
		return us, tier
	}
	if len(in.users) >= in.cfg.Users.MaxUsers {
		in.userOverflow.Inc()
		return in.overflowU, tier
	}
	us := newUserSeries(userLabel(in.cfg.Users, user))
	in.users[string(user)] = us
	return us, tier
}

// configured returns the index of a configured tier name; the anonymous
// tier is not one.
func (in *ingester) configured(name []byte) (int, bool) {
	i, ok := in.tierIndex[string(name)]
	return i, ok && i < len(in.tiers)-1
}

func (in *ingester) tierFor(user, lineTier []byte) int {
	for _, src := range in.tierOrder {
		switch src {
		case tierFromLog:
			if len(lineTier) > 0 {
				if i, ok := in.configured(lineTier); ok {
					return i
				}
			}
		case tierFromRedis:
			if t, ok := in.fromRedis(user); ok {
				if i, ok := in.configured([]byte(t)); ok {
					return i
				}
			}
		case tierFromConfig:
			if i, ok := in.userTiers[string(user)]; ok {
				return i
			}
		}
	}
	return in.defaultT
}

// userLabel applies the label policy to a user id.
func userLabel(c UsersConfig, user []byte) string {
	switch c.Label {
	case UserLabelHashed:
		mac := hmac.New(sha256.New, []byte(c.HashKey))
		mac.Write(user)
		return hex.EncodeToString(mac.Sum(nil)[:8])
	case UserLabelDropped:
		return ""
	default:
		return string(user)
	}
}
