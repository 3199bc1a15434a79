package litellm

import (
	"math"
	"sort"
	"strconv"

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

func (p *parser) model(m *dto.Metric) string {
	primary, secondary := "requested_model", "model"
	if p.opt.ModelLabel == "model" {
		primary, secondary = secondary, primary
	}
	if v := label(m, primary); v != "" {
		return v
	}
	if v := label(m, secondary); v != "" {
		return v
	}
	return "unknown"
}

func (p *parser) user(m *dto.Metric) string {
	name := p.opt.UserLabel
	if name == "" {
		name = "end_user"
	}
	return label(m, name)
}

func firstOf(m *dto.Metric, names ...string) string {
	for _, n := range names {
		if v := label(m, n); v != "" {
			return v
		}
	}
	return ""
}

func (p *parser) apply(mf *dto.MetricFamily) {
	s := p.snap
	for _, m := range mf.GetMetric() {
		v := value(m)
		if math.IsNaN(v) && mf.GetName() != famLatency {
			continue
		}
		switch name := mf.GetName(); name {
		case famStartTime:
			s.StartTime = v
		case famSpend:
			s.Spend[SpendKey{Model: p.model(m), User: p.user(m), Team: firstOf(m, "team_alias", "team"),
				Key: label(m, "api_key_alias")}] += v
		case famInputTokens, famOutputTokens:
			dir := "input"
			if name == famOutputTokens {
				dir = "output"
			}
			s.Tokens[TokenKey{Model: p.model(m), User: p.user(m), Direction: dir}] += v
		case famProxyRequests:
			if code := label(m, "status_code"); code != "" {
				p.byStatus[RequestKey{Model: p.model(m), Status: statusClass(code)}] += v
			} else {
				p.total[p.model(m)] += v
			}
		case famProxyFailed:
			p.failed[p.model(m)] += v
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
		case famSimpleCost:
			s.Simplified = true
			s.Spend[SpendKey{Model: p.model(m), User: p.user(m)}] += v
		case famSimpleInput, famSimpleOutput:
			s.Simplified = true
			dir := "input"
			if name == famSimpleOutput {
				dir = "output"
			}
			s.Tokens[TokenKey{Model: p.model(m), User: p.user(m), Direction: dir}] += v
		case famSimpleRequests:
			s.Simplified = true
			p.simpleReq[p.model(m)] += v
		case famSimpleErrors:
			s.Simplified = true
			p.simpleErr[p.model(m)] += v
		default:
			bf, ok := budgetFamilies[name]
			if !ok {
				continue
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
				continue
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
	}
}

func statusClass(code string) string {
	if n, err := strconv.Atoi(code); err == nil && n >= 200 && n < 400 {
		return "success"
	}
	return "failure"
}

// finish turns the request counts into success and failure per model.
func (p *parser) finish() {
	s := p.snap
	for k, v := range p.byStatus {
		s.Requests[k] += v
	}
	for model, total := range p.total {
		failed := min(p.failed[model], total)
		s.Requests[RequestKey{Model: model, Status: "success"}] += total - failed
		s.Requests[RequestKey{Model: model, Status: "failure"}] += failed
	}
	for model, total := range p.simpleReq {
		failed := min(p.simpleErr[model], total)
		s.Requests[RequestKey{Model: model, Status: "success"}] += total - failed
		s.Requests[RequestKey{Model: model, Status: "failure"}] += failed
	}
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
