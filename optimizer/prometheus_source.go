package optimizer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"
)

// PrometheusSource reads the exporter's series from Prometheus.
//
// The exporter's counters start at zero, are never reset by a restart (they
// are checkpointed), and a new series is first exposed at zero. So what
// happened in a window is exactly the counters' value at its end minus
// their value at its start, for any window: each figure is two instant
// queries of sums (the last sample within an hour before each end), not
// increase(), which extrapolates and loses what crosses the boundaries of
// its blocks, and whose 90-day range would load every raw sample at once.
// A group absent at the start counts from zero; one lower at the end than
// at the start (the exporter lost its state) counts its end value.
//
// The hourly and daily profiles are differences of the same sums at
// clock-aligned steps. GPU utilisation comes from DCGM or nvidia exporter
// series when they are there.
type PrometheusSource struct {
	Q       Querier
	URL     string
	Timeout time.Duration
}

// Name identifies the source in the JSON.
func (p *PrometheusSource) Name() string { return "prometheus " + p.URL }

// cumulative is the sum of metric by labels, as of the last sample within
// an hour.
func cumulative(metric, by string) string {
	return fmt.Sprintf("sum by (%s) (last_over_time(%s[1h]))", by, metric)
}

// profileStep is the step at which the profiles read a sum: at most 10,000
// points (Prometheus answers at most 11,000 per series), and a divisor of
// an hour, so that no step straddles a clock hour.
func profileStep(days int) time.Duration {
	for _, step := range []time.Duration{10 * time.Second, 15 * time.Second, 20 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute, 30 * time.Minute} {
		if time.Duration(days)*24*time.Hour/step <= 10000 {
			return step
		}
	}
	return time.Hour
}

// promQueries runs the queries of one snapshot in parallel and keeps the
// first errors.
type promQueries struct {
	ctx  context.Context
	q    Querier
	mu   sync.Mutex
	errs []error
	wg   sync.WaitGroup
}

func (pq *promQueries) run(q string, f func() error) {
	pq.wg.Add(1)
	go func() {
		defer pq.wg.Done()
		if err := f(); err != nil {
			pq.mu.Lock()
			pq.errs = append(pq.errs, fmt.Errorf("%s: %w", q, err))
			pq.mu.Unlock()
		}
	}()
}

// instant hands on the samples of q at t, under the lock.
func (pq *promQueries) instant(q string, t time.Time, f func(l model.Metric, v float64)) {
	pq.run(q, func() error {
		vec, err := pq.q.Query(pq.ctx, q, t)
		if err != nil {
			return err
		}
		pq.mu.Lock()
		defer pq.mu.Unlock()
		for _, smp := range vec {
			if v := float64(smp.Value); !math.IsNaN(v) {
				f(smp.Metric, v)
			}
		}
		return nil
	})
}

// ends runs q at start and at end, in parallel.
func (pq *promQueries) ends(q string, start, end time.Time) ([2]model.Vector, error) {
	var at [2]model.Vector
	var errs [2]error
	var wg sync.WaitGroup
	for i, t := range []time.Time{start, end} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at[i], errs[i] = pq.q.Query(pq.ctx, q, t)
		}()
	}
	wg.Wait()
	return at, errors.Join(errs[:]...)
}

// window hands on, by group, what metric summed by labels gained between
// start and end (see PrometheusSource).
func (pq *promQueries) window(metric, by string, start, end time.Time, f func(l model.Metric, v float64)) {
	q := cumulative(metric, by)
	pq.run(q, func() error {
		at, err := pq.ends(q, start, end)
		if err != nil {
			return err
		}
		before := make(map[model.Fingerprint]float64, len(at[0]))
		for _, smp := range at[0] {
			before[smp.Metric.Fingerprint()] = float64(smp.Value)
		}
		pq.mu.Lock()
		defer pq.mu.Unlock()
		for _, smp := range at[1] {
			v := float64(smp.Value)
			if b := before[smp.Metric.Fingerprint()]; v >= b {
				v -= b
			}
			if !math.IsNaN(v) && v > 0 {
				f(smp.Metric, v)
			}
		}
		return nil
	})
}

// profile reads the sums of q at every step of the window (on the clock's
// step boundaries) and at end, and hands on each increase of each series
// with the end of the step it happened in: none is lost between two
// points, none put in the wrong hour. Where a sum begins inside the window,
// it begins at zero.
func (pq *promQueries) profile(q string, start, end time.Time, step time.Duration, f func(l model.Metric, end time.Time, inc float64)) {
	pq.run(q, func() error {
		first := start.Truncate(step)
		m, err := pq.q.QueryRange(pq.ctx, q, first, end, step)
		if err != nil {
			return err
		}
		last, err := pq.q.Query(pq.ctx, q, end)
		if err != nil {
			return err
		}
		lastOf := make(map[model.Fingerprint]model.SampleValue, len(last))
		for _, smp := range last {
			lastOf[smp.Metric.Fingerprint()] = smp.Value
		}
		pq.mu.Lock()
		defer pq.mu.Unlock()
		for _, ss := range m {
			points := ss.Values
			if v, ok := lastOf[ss.Metric.Fingerprint()]; ok && (len(points) == 0 || points[len(points)-1].Timestamp.Time().Before(end)) {
				points = append(points, model.SamplePair{Timestamp: model.TimeFromUnixNano(end.UnixNano()), Value: v})
			}
			prev := 0.0
			for i, pt := range points {
				if i == 0 && !pt.Timestamp.Time().After(first) {
					prev = float64(pt.Value) // the sum before the window
					continue
				}
				// A sum that drops lost a series or had one reset: no increase.
				if d := float64(pt.Value) - prev; d > 0 {
					f(ss.Metric, pt.Timestamp.Time().UTC(), d)
				}
				prev = float64(pt.Value)
			}
		}
		return nil
	})
}

// Snapshot queries the window of days days ending at now. Queries run in
// parallel; any failure fails the snapshot (no partial figures).
func (p *PrometheusSource) Snapshot(ctx context.Context, days int, now time.Time) (*Snapshot, error) {
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	s := newSnapshot(days, now)
	s.Source = p.Name()
	rec, err := findRecorded(ctx, p.Q, s.Start, now)
	if err != nil {
		return nil, err
	}
	s.RecordingRules = rec.used()
	pq := &promQueries{ctx: ctx, q: p.Q}
	win := func(metric, by string, f func(l model.Metric, v float64)) {
		pq.window(rec.rewrite(metric, by), by, s.Start, now, f)
	}

	pq.instant(fmt.Sprintf("avg by (volume) (avg_over_time(usage_storage_bytes[%dd]))", days), now, func(l model.Metric, v float64) {
		if s.StorageBytes == nil {
			s.StorageBytes = map[string]float64{}
		}
		s.StorageBytes[string(l["volume"])] = v
	})
	svc := func(l model.Metric) *ServiceUsage { return s.service(string(l["api_service"])) }
	win("usage_requests_total", "api_service", func(l model.Metric, v float64) { svc(l).Calls = v })
	win(`usage_requests_total{code!~"[23].."}`, "api_service", func(l model.Metric, v float64) { svc(l).Errors = v })
	win(`usage_requests_total{code=~"408|504"}`, "api_service", func(l model.Metric, v float64) { svc(l).Timeouts = v })
	win("usage_request_duration_seconds_sum", "api_service", func(l model.Metric, v float64) { svc(l).LatencySum = v })
	win("usage_request_duration_seconds_count", "api_service", func(l model.Metric, v float64) { svc(l).LatencyCount = v })
	win("usage_response_size_bytes_total", "api_service", func(l model.Metric, v float64) { svc(l).Bytes = v })
	win("usage_duplicate_requests_total", "api_service", func(l model.Metric, v float64) { svc(l).Duplicates = v })
	win("usage_egress_cost_dollars_total", "api_service", func(l model.Metric, v float64) { svc(l).Egress = v })
	win("usage_cost_dollars_total", "api_service, model", func(l model.Metric, v float64) {
		sv := svc(l)
		sv.Cost += v
		sv.ModelCost[string(l["model"])] += v
		if m := string(l["model"]); m != "" {
			s.model(m).Cost += v
		}
	})

	ep := func(l model.Metric) *EndpointUsage { return s.endpoint(string(l["route"]), string(l["api_service"])) }
	win("usage_requests_total", "api_service, route", func(l model.Metric, v float64) { ep(l).Calls = v })
	win(`usage_requests_total{code!~"[23].."}`, "api_service, route", func(l model.Metric, v float64) { ep(l).Errors = v })
	win("usage_request_duration_seconds_sum", "api_service, route", func(l model.Metric, v float64) { ep(l).LatencySum = v })
	win("usage_request_duration_seconds_count", "api_service, route", func(l model.Metric, v float64) { ep(l).LatencyCount = v })

	win("usage_llm_tokens_total", "model, direction", func(l model.Metric, v float64) {
		s.model(string(l["model"])).Tokens[string(l["direction"])] = v
	})
	win("usage_llm_requests_total", "model, status", func(l model.Metric, v float64) {
		m := s.model(string(l["model"]))
		m.Calls += v
		if l["status"] == "failure" {
			m.Failures += v
		}
	})
	win("usage_llm_request_tokens_bucket", "model, le", func(l model.Metric, v float64) {
		if le, err := strconv.ParseFloat(string(l["le"]), 64); err == nil {
			s.model(string(l["model"])).PromptTokens[le] = v
		}
	})

	win("usage_exporter_unpriced_requests_total", "reason", func(l model.Metric, v float64) { s.Unpriced[string(l["reason"])] = v })

	usr := func(l model.Metric) *UserUsage { return s.user(string(l["user"]), string(l["tier"])) }
	win("usage_user_requests_total", "user, tier, api_service", func(l model.Metric, v float64) {
		u := usr(l)
		u.Calls += v
		u.ByService[string(l["api_service"])] += v
	})
	win("usage_user_cost_dollars_total", "user, tier", func(l model.Metric, v float64) { usr(l).Cost += v })
	win("usage_org_requests_total", "org", func(l model.Metric, v float64) { s.org(string(l["org"])).Calls += v })
	win("usage_org_cost_dollars_total", "org", func(l model.Metric, v float64) { s.org(string(l["org"])).Cost += v })
	win("usage_user_tokens_total", "user, tier", func(l model.Metric, v float64) { usr(l).Tokens += v })

	// Gauges are read at now.
	qs := quotaSet{}
	pq.instant("max(usage_quota_period_start_timestamp_seconds)", now, func(_ model.Metric, v float64) { qs.start = v })
	pq.instant("max(usage_quota_period_end_timestamp_seconds)", now, func(_ model.Metric, v float64) { qs.end = v })
	// Exporters sharing a ledger in Redis all report the same totals: max, not sum.
	pq.instant("max by (user, tier, resource) (usage_quota_used)", now, func(l model.Metric, v float64) {
		qs.add(string(l["user"]), string(l["tier"]), string(l["resource"]), v)
	})

	latency := buckets{}
	latencyOf := map[string]buckets{}
	win("usage_request_duration_seconds_bucket", "api_service, le", func(l model.Metric, v float64) {
		if le, err := strconv.ParseFloat(string(l["le"]), 64); err == nil {
			latency[le] += v
			name := string(l["api_service"])
			if latencyOf[name] == nil {
				latencyOf[name] = buckets{}
			}
			latencyOf[name][le] += v
		}
	})

	// With native histograms, the quantiles come from their exponential
	// buckets (within 4.4%); the classic buckets are the fallback.
	nativeOf := map[string]*native{}
	pq.nativeWindow("usage_request_duration_seconds", "api_service", s.Start, now, func(l model.Metric, n *native) {
		nativeOf[string(l["api_service"])] = n
	})

	// The profiles put each increase in the hour and day it ended in.
	inStep := func(end time.Time) time.Time { return end.Add(-time.Nanosecond) }
	daily := map[string]*DayUsage{}
	day := func(end time.Time) *DayUsage {
		d := inStep(end).Truncate(24 * time.Hour)
		k := d.Format("2006-01-02")
		if daily[k] == nil {
			daily[k] = &DayUsage{Date: d}
		}
		return daily[k]
	}
	s.Hourly = make([]float64, 24)
	s.HourlyByService = map[string][]float64{}
	step := profileStep(days)
	pq.profile("sum by (api_service) ("+rec.rewrite("usage_requests_total", "api_service")+")", s.Start, now, step, func(l model.Metric, end time.Time, inc float64) {
		h := inStep(end).Hour()
		s.Hourly[h] += inc
		name := string(l["api_service"])
		if s.HourlyByService[name] == nil {
			s.HourlyByService[name] = make([]float64, 24)
		}
		s.HourlyByService[name][h] += inc
		day(end).Calls += inc
	})
	// Two sums: the per-call cost and the egress series of a service share
	// their labels.
	for _, metric := range []string{"usage_cost_dollars_total", "usage_egress_cost_dollars_total"} {
		pq.profile("sum("+metric+")", s.Start, now, step, func(_ model.Metric, end time.Time, inc float64) { day(end).Cost += inc })
	}

	gpu := p.gpu(pq, days, now)
	pq.wg.Wait()
	if len(pq.errs) > 0 {
		return nil, errors.Join(pq.errs...)
	}
	s.countLabelledUsers()
	s.averageLatency()
	if len(latency) > 0 {
		s.Latency.P50, s.Latency.P95, s.Latency.P99 = latency.quantile(0.5), latency.quantile(0.95), latency.quantile(0.99)
	}
	for name, b := range latencyOf {
		sv := s.service(name)
		sv.P50, sv.P95, sv.P99 = b.quantile(0.5), b.quantile(0.95), b.quantile(0.99)
	}
	if len(nativeOf) > 0 {
		all := &native{buckets: map[[2]float64]float64{}}
		for name, n := range nativeOf {
			sv := s.service(name)
			sv.P50, sv.P95, sv.P99 = n.quantile(0.5), n.quantile(0.95), n.quantile(0.99)
			if sv.LatencyCount == 0 { // Prometheus keeps the native buckets only
				sv.LatencySum, sv.LatencyCount = n.sum, n.count
			}
			all.merge(n)
		}
		s.Latency.P50, s.Latency.P95, s.Latency.P99 = all.quantile(0.5), all.quantile(0.95), all.quantile(0.99)
		s.averageLatency()
	}
	for _, d := range daily {
		s.Daily = append(s.Daily, *d)
	}
	sortDays(s.Daily)
	s.Quotas = qs.list(now)
	s.GPU = gpu()
	if s.TotalCalls() == 0 {
		s.Missing["requests"] = "no usage_requests_total increase in the window: is Prometheus scraping the exporter?"
	}
	return s, nil
}

// gpu queries the mean GPU utilisation over the window and the GPU count,
// from DCGM or the nvidia exporter; the returned function reads the result
// once the queries are done.
func (p *PrometheusSource) gpu(pq *promQueries, days int, now time.Time) func() *GPUUsage {
	var dcgmUtil, dcgmCount, nvUtil, nvCount float64
	dcgm := false
	pq.instant(fmt.Sprintf("avg_over_time((avg(DCGM_FI_DEV_GPU_UTIL))[%dd:5m]) / 100", days), now, func(_ model.Metric, v float64) {
		dcgmUtil, dcgm = v, true
	})
	pq.instant("count(last_over_time(DCGM_FI_DEV_GPU_UTIL[1h]))", now, func(_ model.Metric, v float64) { dcgmCount = v })
	pq.instant(fmt.Sprintf("avg_over_time((avg(nvidia_gpu_duty_cycle))[%dd:5m]) / 100", days), now, func(_ model.Metric, v float64) {
		nvUtil = v
	})
	pq.instant("count(last_over_time(nvidia_gpu_duty_cycle[1h]))", now, func(_ model.Metric, v float64) { nvCount = v })
	return func() *GPUUsage {
		switch {
		case dcgm && dcgmCount > 0:
			return &GPUUsage{Utilization: dcgmUtil, GPUs: int(dcgmCount), Metric: "DCGM_FI_DEV_GPU_UTIL"}
		case nvCount > 0:
			return &GPUUsage{Utilization: nvUtil, GPUs: int(nvCount), Metric: "nvidia_gpu_duty_cycle"}
		}
		return nil
	}
}
