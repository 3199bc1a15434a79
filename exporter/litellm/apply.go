package litellm

import (
	"math"
	"slices"
	"sort"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
)

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			if v := l.GetValue(); v != "None" {
				return v
			}
			return ""
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

// model is the label the latency and cache families are keyed by: the
// configured model label, else the other one.
func (p *parser) model(m *dto.Metric) string {
	if v := label(m, p.modelLabel); v != "" {
		return v
	}
	if v := label(m, p.otherLabel); v != "" {
		return v
	}
	return "unknown"
}

func firstOf(m *dto.Metric, names ...string) string {
	for _, n := range names {
		if v := label(m, n); v != "" {
			return v
		}
	}
	return ""
}

// asSample turns an expfmt metric into the scanner's sample, so that both
// paths count through one function.
func asSample(name string, m *dto.Metric, s *sample) *sample {
	s.name = append(s.name[:0], name...)
	s.labels = s.labels[:0]
	for _, l := range m.GetLabel() {
		s.labels = append(s.labels, labelPair{name: []byte(l.GetName()), value: []byte(l.GetValue())})
	}
	s.value = value(m)
	return s
}

func (p *parser) apply(mf *dto.MetricFamily) {
	s := p.snap
	var one sample
	for _, m := range mf.GetMetric() {
		v := value(m)
		if math.IsNaN(v) && mf.GetName() != famLatency {
			continue
		}
		name := mf.GetName()
		if _, ok := countedFamilies[name]; ok {
			p.count(name, asSample(name, m, &one))
			continue
		}
		switch name {
		case famStartTime:
			s.StartTime = v
		case famLatency:
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			agg := s.Latency[p.model(m)]
			if agg == nil {
				agg = &Histogram{Buckets: map[float64]float64{}}
				s.Latency[p.model(m)] = agg
			}
			for _, b := range h.GetBucket() {
				agg.Buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
			agg.Count += float64(h.GetSampleCount())
			agg.Sum += h.GetSampleSum()
		case famCacheHits:
			s.CacheHits[p.model(m)] += v
		case famCacheMisses:
			s.CacheMiss[p.model(m)] += v
		default:
			p.budget(name, m, v)
		}
	}
}

// count records one sample of a counted family: its identity, its kind and
// the labels usage-exporter keeps.
func (p *parser) count(family string, s *sample) {
	if math.IsNaN(s.value) {
		return
	}
	kind := countedFamilies[family]
	if kind == Requests || kind == FailedRequests {
		if route := s.get("route"); route != nil && slices.Contains(p.opt.IgnoreRoutes, string(route)) {
			return
		}
		if code := s.get("status_code"); code != nil && kind == Requests {
			kind = ErrorRequests
			if ok(code) {
				kind = OKRequests
			}
		}
	}
	if simplified(family) {
		p.snap.Simplified = true
	}
	l := Labels{Model: p.names.get(s.get(p.modelLabel)), Other: p.names.get(s.get(p.otherLabel)),
		User: p.names.get(s.get(p.userLabel))}
	if kind == Spend {
		l.Team = p.names.get(firstNonEmpty(s, "team_alias", "team"))
		l.Key = p.names.get(s.get("api_key_alias"))
		if org := s.get("org_id"); string(org) != "None" { // LiteLLM writes None for keys of no organisation
			l.Org = p.names.get(org)
		}
	}
	idx, found := p.index[l]
	if !found {
		idx = int32(len(p.snap.labels))
		p.snap.labels = append(p.snap.labels, l)
		p.index[l] = idx
	}
	p.snap.Series = append(p.snap.Series, Sample{ID: seriesID(family, s), Kind: kind, labels: idx, Value: s.value})
}

// seriesID hashes a series' family and all its labels, in their order (a
// LiteLLM process writes them in one order).
func seriesID(family string, s *sample) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(family)
	for _, l := range s.labels {
		d.Write([]byte{0xff})
		d.Write(l.name)
		d.Write([]byte{0xfe})
		d.Write(l.value)
	}
	return d.Sum64()
}

// ok reports whether an HTTP status code is a success (2xx or 3xx).
func ok(code []byte) bool {
	return len(code) == 3 && (code[0] == '2' || code[0] == '3') && isDigit(code[1]) && isDigit(code[2])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *parser) budget(name string, m *dto.Metric, v float64) {
	bf, found := budgetFamilies[name]
	if !found {
		return
	}
	var who string
	switch bf.scope {
	case "team":
		who = firstOf(m, "team_alias", "team")
	case "org":
		who = firstOf(m, "org_alias", "org_id")
	case "api_key":
		who = firstOf(m, "api_key_alias", "hashed_api_key")
	default:
		who = label(m, "user")
	}
	if who == "" {
		return
	}
	b := p.budgets[bf.scope+"\x00"+who]
	if b == nil {
		b = &Budget{Scope: bf.scope, Name: who, Remaining: math.NaN(), Max: math.NaN(), HoursToReset: math.NaN()}
		p.budgets[bf.scope+"\x00"+who] = b
	}
	if math.IsInf(v, 0) {
		v = math.NaN() // no budget set
	}
	switch bf.field {
	case "remaining":
		b.Remaining = v
	case "max":
		b.Max = v
	default:
		b.HoursToReset = v
	}
}

// finish completes the snapshot: model pairs and budgets.
func (p *parser) finish() {
	s := p.snap
	s.addPairs()
	for _, b := range p.budgets {
		s.Budgets = append(s.Budgets, *b)
	}
	sort.Slice(s.Budgets, func(i, j int) bool {
		if s.Budgets[i].Scope != s.Budgets[j].Scope {
			return s.Budgets[i].Scope < s.Budgets[j].Scope
		}
		return s.Budgets[i].Name < s.Budgets[j].Name
	})
}
