package optimizer

import (
	"math"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/window"
)

// FromWindow builds a snapshot of the exporter's window: exact sums of the
// lines' figures by log time. The monthly figures scale from the log time
// the window holds: from its start (or its oldest line) to its newest line.
func FromWindow(w *window.Window, days int) *Snapshot {
	s := newSnapshot(days, w.End)
	s.Start, s.End = w.Start, w.End
	s.StorageBytes = w.StorageBytes
	from := w.Start
	if w.Oldest.After(from) {
		from = w.Oldest
	}
	s.Window = w.Newest.Sub(from)
	if w.Newest.IsZero() || s.Window <= 0 {
		s.Window = time.Second
	}
	overall := &window.Sketch{}
	for name, sv := range w.Services {
		x := s.service(name)
		*x = ServiceUsage{Calls: sv.Calls, Errors: sv.Errors, Timeouts: sv.Timeouts, Cost: sv.Cost, ModelCost: map[string]float64{},
			Egress: sv.Egress, Bytes: sv.Bytes, Duplicates: sv.Duplicates, LatencySum: sv.LatencySum, LatencyCount: sv.LatencyCount,
			UniqueUsers: sv.UniqueUsers, P50: math.NaN(), P95: math.NaN(), P99: math.NaN()}
		if sv.PerCallCost != 0 {
			x.ModelCost[""] = sv.PerCallCost
		}
		if sv.Latency != nil && sv.Latency.Count() > 0 {
			x.P50, x.P95, x.P99 = sv.Latency.Quantile(0.5), sv.Latency.Quantile(0.95), sv.Latency.Quantile(0.99)
			overall.Merge(sv.Latency)
		}
	}
	for name, m := range w.Models {
		x := s.model(name)
		x.Calls, x.Failures, x.Cost = m.Calls, m.Failures, m.Cost
		for dir, n := range m.Tokens {
			x.Tokens[dir] = n
		}
		if p := m.Prompts; p.Simple+p.Medium+p.Complex > 0 {
			x.PromptTokens = map[float64]float64{SimpleTokens - 1: p.Simple, ComplexTokens - 1: p.Simple + p.Medium,
				math.Inf(1): p.Simple + p.Medium + p.Complex}
		}
		for svc, c := range m.CostByService {
			s.service(svc).ModelCost[name] += c
		}
	}
	for _, r := range w.Routes {
		ep := s.endpoint(r.Route, r.Service)
		ep.Calls += r.Calls
		ep.Errors += r.Errors
		ep.LatencySum += r.LatencySum
		ep.LatencyCount += r.LatencyCount
	}
	for name, u := range w.Users {
		x := s.user(name, u.Tier)
		x.Calls, x.Cost, x.Tokens = u.Calls, u.Cost, u.Tokens
		for svc, n := range u.ByService {
			x.ByService[svc] = n
		}
	}
	s.UniqueUsers = w.UniqueUsers
	for reason, n := range w.Unpriced {
		s.Unpriced[reason] = n
	}
	s.Hourly = w.Hourly
	s.HourlyByService = w.HourlyByService
	for _, d := range w.Daily {
		t, err := time.Parse(time.DateOnly, d.Date)
		if err == nil {
			s.Daily = append(s.Daily, DayUsage{Date: t, Calls: d.Calls, Cost: d.Cost})
		}
	}
	sortDays(s.Daily)
	s.averageLatency()
	if overall.Count() > 0 {
		s.Latency.P50, s.Latency.P95, s.Latency.P99 = overall.Quantile(0.5), overall.Quantile(0.95), overall.Quantile(0.99)
	}
	if s.TotalCalls() == 0 {
		s.Missing["requests"] = "no lines in the window yet"
	}
	return s
}
