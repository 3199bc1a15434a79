package exporter

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/classify"
	"github.com/usage-exporter/usage-exporter/exporter/dedup"
	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/exporter/plans"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
)

// Label values the exporter itself introduces.
const (
	otherLabel     = "__other__"
	anonymousLabel = "__anonymous__"
	otherMethod    = "other"
)

var knownMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"}

// ingester turns parsed lines into metric updates. It is the one loop of
// the push path: line -> logparse.Record -> classification -> series. It
// caches the series it touches, so that a line costs map lookups and atomic
// adds, never a label-set hash in client_golang. Not safe for concurrent use.
type ingester struct {
	cfg        *Config
	m          *Metrics
	log        *slog.Logger
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
	rec        logparse.Record
	now        func() time.Time

	routeOverflow, userOverflow prometheus.Counter
	// Positions holds the position after the last processed batch of each file.
	positions map[tailer.FileID]tailer.Position
}

type serviceSeries struct {
	name          string
	responseBytes prometheus.Counter
	duplicates    prometheus.Counter
}

type sourceState struct {
	name          string
	parser        logparse.Parser
	parsed        prometheus.Counter
	invalid       prometheus.Counter
	filtered      prometheus.Counter
	errors        map[logparse.Reason]prometheus.Counter
	lastTime      prometheus.Gauge
	lastTimeValue float64
	lastLog       time.Time
	suppressed    int
}

type routeKey struct {
	route   *classify.Route
	service int
}

type routeSeries struct {
	service  int
	route    string
	duration prometheus.Observer
	requests map[uint32]prometheus.Counter // method index << 16 | status
}

type userSeries struct {
	label    string
	requests map[uint32]prometheus.Counter // tier << 16 | service
}

func newIngester(cfg *Config, m *Metrics, log *slog.Logger) (*ingester, error) {
	cl, err := classify.New(cfg.Classify)
	if err != nil {
		return nil, err
	}
	in := &ingester{
		cfg: cfg, m: m, log: log, classifier: cl,
		routes:        map[routeKey]*routeSeries{},
		users:         map[string]*userSeries{},
		tierIndex:     map[string]int{},
		userTiers:     map[string]int{},
		positions:     map[tailer.FileID]tailer.Position{},
		now:           time.Now,
		routeOverflow: m.seriesOverflow.WithLabelValues(overflowRoute),
		userOverflow:  m.seriesOverflow.WithLabelValues(overflowUser),
	}
	for _, name := range cl.Services() {
		in.services = append(in.services, &serviceSeries{
			name:          name,
			responseBytes: m.responseBytes.WithLabelValues(name),
			duplicates:    m.duplicates.WithLabelValues(name),
		})
	}
	for _, src := range cfg.Logs.Sources {
		p, err := logparse.New(src.Config)
		if err != nil {
			return nil, err
		}
		st := &sourceState{
			name: src.Path, parser: p,
			parsed:   m.logLines.WithLabelValues(src.Path, resultParsed),
			invalid:  m.logLines.WithLabelValues(src.Path, resultInvalid),
			filtered: m.logLines.WithLabelValues(src.Path, resultFiltered),
			errors:   map[logparse.Reason]prometheus.Counter{},
			lastTime: m.logLastTime.WithLabelValues(src.Path),
		}
		m.initSource(src.Path)
		for _, r := range logparse.Reasons {
			st.errors[r] = m.logLineErrors.WithLabelValues(src.Path, string(r))
		}
		in.sources = append(in.sources, st)
	}
	in.tiers = append(cfg.Plans.Names(), plans.AnonymousTier)
	for i, t := range in.tiers {
		in.tierIndex[t] = i
	}
	in.defaultT = in.tierIndex[cfg.Plans.DefaultTier]
	for u, t := range cfg.Plans.Users {
		in.userTiers[u] = in.tierIndex[t]
	}
	in.overflowU = &userSeries{label: otherLabel, requests: map[uint32]prometheus.Counter{}}
	in.anonymous = &userSeries{label: anonymousLabel, requests: map[uint32]prometheus.Counter{}}
	in.dropped = &userSeries{label: "", requests: map[uint32]prometheus.Counter{}}
	for i := range in.codes {
		if i >= 100 {
			in.codes[i] = strconv.Itoa(i)
		}
	}
	return in, nil
}

// ingestBatch processes every line of b and records its end position.
func (in *ingester) ingestBatch(b *tailer.Batch) {
	src := in.sources[b.Source]
	var parsed, invalid, filtered int
	maxLine := in.cfg.Logs.MaxLineBytes
	newest := src.lastTimeValue
	data := b.Data
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			nl = len(data) // the tailer hands on whole lines; be safe anyway
		}
		line := data[:nl]
		data = data[min(nl+1, len(data)):]
		if len(line) > maxLine {
			invalid++
			in.reject(src, line, logparse.ErrTooLong)
			continue
		}
		if err := src.parser.Parse(line, &in.rec); err != nil {
			invalid++
			in.reject(src, line, err)
			continue
		}
		if !in.observe(&in.rec) {
			filtered++
			continue
		}
		parsed++
		if !in.rec.Time.IsZero() {
			if ts := float64(in.rec.Time.UnixMilli()) / 1e3; ts > newest {
				newest = ts
			}
		}
	}
	if b.Dropped > 0 {
		invalid += b.Dropped
		src.errors[logparse.ReasonTooLong].Add(float64(b.Dropped))
	}
	src.parsed.Add(float64(parsed))
	src.invalid.Add(float64(invalid))
	src.filtered.Add(float64(filtered))
	if newest > src.lastTimeValue {
		src.lastTimeValue = newest
		src.lastTime.Set(newest)
	}
	if b.Retire {
		delete(in.positions, b.Pos.FileID)
	} else {
		in.positions[b.Pos.FileID] = b.Pos
	}
	if in.dups != nil && in.dups.Evicted > 0 {
		in.m.dedupEvictions.Add(float64(in.dups.Evicted))
		in.dups.Evicted = 0
	}
}

// reject counts a bad line and logs it, at most once per interval per source.
func (in *ingester) reject(src *sourceState, line []byte, err error) {
	src.errors[logparse.ReasonOf(err)].Inc()
	now := in.now()
	if now.Sub(src.lastLog) < in.cfg.Logs.InvalidLogInterval {
		src.suppressed++
		return
	}
	const maxShown = 256
	shown := line
	if len(shown) > maxShown {
		shown = shown[:maxShown]
	}
	in.log.Warn("invalid log line", "source", src.name, "err", err, "line", string(shown),
		"suppressed_since_last", src.suppressed)
	src.lastLog, src.suppressed = now, 0
}

// observe updates the series for one request; false if it is filtered out.
func (in *ingester) observe(rec *logparse.Record) bool {
	route := in.classifier.Route(rec.Path)
	if route.Ignored {
		return false
	}
	svc := route.Service
	if len(rec.Service) > 0 {
		if i, ok := in.classifier.ServiceIndex(rec.Service); ok {
			svc = i
		}
	}
	if route.Overflow {
		in.routeOverflow.Inc()
	}
	rs := in.routeSeries(route, svc)
	method := methodIndex(rec.Method)
	key := uint32(method)<<16 | uint32(rec.Status)
	c, ok := rs.requests[key]
	if !ok {
		name := otherMethod
		if method < len(knownMethods) {
			name = knownMethods[method]
		}
		c = in.m.requests.WithLabelValues(in.services[svc].name, rs.route, name, in.codes[rec.Status])
		rs.requests[key] = c
	}
	c.Inc()
	if rec.HasDuration {
		rs.duration.Observe(rec.Duration)
	}
	ss := in.services[svc]
	if rec.Size > 0 {
		ss.responseBytes.Add(float64(rec.Size))
	}
	us, tier := in.user(rec)
	ukey := uint32(tier)<<16 | uint32(svc)
	uc, ok := us.requests[ukey]
	if !ok {
		uc = in.m.userRequests.WithLabelValues(us.label, in.tiers[tier], ss.name)
		us.requests[ukey] = uc
	}
	uc.Inc()
	if len(rec.CacheKey) > 0 {
		if in.dups == nil {
			in.dups = dedup.New(in.cfg.Duplicates)
		}
		at := rec.Time
		if at.IsZero() {
			at = in.now()
		}
		if in.dups.Seen(ss.name, rec.CacheKey, at) {
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
			service:  svc,
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
// the user cap, and the line's tier index.
func (in *ingester) user(rec *logparse.Record) (*userSeries, int) {
	if len(rec.User) == 0 {
		return in.anonymous, len(in.tiers) - 1
	}
	tier := -1
	if len(rec.Tier) > 0 {
		if i, ok := in.tierIndex[string(rec.Tier)]; ok && i < len(in.tiers)-1 {
			tier = i
		}
	}
	if tier < 0 {
		if i, ok := in.userTiers[string(rec.User)]; ok {
			tier = i
		} else {
			tier = in.defaultT
		}
	}
	if in.cfg.Users.Label == UserLabelDropped {
		return in.dropped, tier
	}
	if us, ok := in.users[string(rec.User)]; ok {
		return us, tier
	}
	if len(in.users) >= in.cfg.Users.MaxUsers {
		in.userOverflow.Inc()
		return in.overflowU, tier
	}
	us := &userSeries{label: in.userLabel(rec.User), requests: map[uint32]prometheus.Counter{}}
	in.users[string(rec.User)] = us
	return us, tier
}

func (in *ingester) userLabel(user []byte) string {
	switch in.cfg.Users.Label {
	case UserLabelHashed:
		mac := hmac.New(sha256.New, []byte(in.cfg.Users.HashKey))
		mac.Write(user)
		return hex.EncodeToString(mac.Sum(nil)[:8])
	default:
		return string(user)
	}
}
