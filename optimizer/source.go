package optimizer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Source produces a Snapshot of a window of days ending at now.
type Source interface {
	Snapshot(ctx context.Context, days int, now time.Time) (*Snapshot, error)
	Name() string
}

// Querier is the part of the Prometheus HTTP API the optimizer uses.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time) (model.Vector, error)
	QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (model.Matrix, error)
}

type promAPI struct{ api v1.API }

// NewQuerier talks to a Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir).
func NewQuerier(url string) (Querier, error) {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, err
	}
	return promAPI{api: v1.NewAPI(c)}, nil
}

func (p promAPI) Query(ctx context.Context, q string, ts time.Time) (model.Vector, error) {
	v, _, _, err := p.api.Query(ctx, q, ts)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("%s: got %s, want a vector", q, v.Type())
	}
	return vec, nil
}

func (p promAPI) QueryRange(ctx context.Context, q string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	v, _, _, err := p.api.QueryRange(ctx, q, v1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return nil, err
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("%s: got %s, want a matrix", q, v.Type())
	}
	return m, nil
}

// PrometheusSource reads the exporter's series from Prometheus: increases
// over the window, the hourly and daily profiles, and GPU utilisation when
// DCGM or nvidia exporter series are there.
//
// A plain increase(m[90d]) loads every raw sample of the window into memory
// at once and trips Prometheus' query.max-samples (50M) at a few hundred
// series. Every window figure is therefore a sum of hourly increases, as a
// subquery: Prometheus holds one hour of raw samples per series at a time,
// and 24 x days points per output series. The hours are counted back from
// the time of the analysis, so the window ends exactly then, wherever the
// clock hour falls.
type PrometheusSource struct {
	Q       Querier
	URL     string
	Timeout time.Duration
}

// Name identifies the source in the JSON.
func (p *PrometheusSource) Name() string { return "prometheus " + p.URL }

// hourly sums hourly increases of metric by labels over days days. Evaluated
// at a full hour, the subquery's steps fall on full hours; the offset moves
// every hour back by shift, so that the last one ends at the full hour minus
// shift.
func hourly(metric, by string, days int, shift time.Duration) string {
	offset := ""
	if shift > 0 {
		offset = fmt.Sprintf(" offset %dms", shift.Milliseconds())
	}
	return fmt.Sprintf("sum_over_time((sum by (%s) (increase(%s[1h]%s)))[%dd:1h])", by, metric, offset, days)
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

// Snapshot queries the window of days days ending at now. Queries run in
// parallel; any failure fails the snapshot (no partial figures).
func (p *PrometheusSource) Snapshot(ctx context.Context, days int, now time.Time) (*Snapshot, error) {
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	// Window sums are evaluated at the next full hour, shifted back to now.
	evalAt := now.Truncate(time.Hour)
	if evalAt.Before(now) {
		evalAt = evalAt.Add(time.Hour)
	}
	s := newSnapshot(days, now)
	s.Source = p.Name()
	inc := func(metric, by string) string { return hourly(metric, by, days, evalAt.Sub(now)) }
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	// Window sums evaluate at the next full hour; gauges at now, since a
	// gauge is stale five minutes after its last sample.
	query := func(q string, at time.Time, f func(model.Vector)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := p.Q.Query(ctx, q, at)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", q, err))
				return
			}
			f(v)
		}()
	}
	instant := func(q string, f func(model.Vector)) { query(q, evalAt, f) }
	gauge := func(q string, f func(model.Vector)) { query(q, now, f) }
	// profile reads the sum q at every step of the window (on the clock's
	// step boundaries) and at now, and hands on each increase with the end
	// of the step it happened in: no increase is lost between two points,
	// and none is put in the wrong hour.
	step := profileStep(days)
	profile := func(q string, f func(end time.Time, inc float64)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := s.Start.Truncate(step)
			m, err := p.Q.QueryRange(ctx, q, first, now, step)
			var last model.Vector
			if err == nil {
				last, err = p.Q.Query(ctx, q, now)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", q, err))
				return
			}
			var points []model.SamplePair
			if len(m) > 0 {
				points = m[0].Values
			}
			if len(last) > 0 && (len(points) == 0 || points[len(points)-1].Timestamp.Time().Before(now)) {
				points = append(points, model.SamplePair{Timestamp: model.TimeFromUnixNano(now.UnixNano()), Value: last[0].Value})
			}
			for i := 1; i < len(points); i++ {
				// A sum that drops lost a series or had one reset: count no increase.
				if d := float64(points[i].Value - points[i-1].Value); d > 0 && points[i].Timestamp.Time().After(s.Start) {
					f(points[i].Timestamp.Time().UTC(), d)
				}
			}
		}()
	}
	each := func(f func(l model.Metric, v float64)) func(model.Vector) {
		return func(vec model.Vector) {
			for _, smp := range vec {
				if v := float64(smp.Value); !math.IsNaN(v) {
					f(smp.Metric, v)
				}
			}
		}
	}
	svc := func(l model.Metric) *ServiceUsage { return s.service(string(l["api_service"])) }
	instant(inc("usage_requests_total", "api_service"), each(func(l model.Metric, v float64) { svc(l).Calls = v }))
	instant(inc(`usage_requests_total{code!~"[23].."}`, "api_service"), each(func(l model.Metric, v float64) { svc(l).Errors = v }))
	instant(inc(`usage_requests_total{code=~"408|504"}`, "api_service"), each(func(l model.Metric, v float64) { svc(l).Timeouts = v }))
	instant(inc("usage_request_duration_seconds_sum", "api_service"), each(func(l model.Metric, v float64) { svc(l).LatencySum = v }))
	instant(inc("usage_request_duration_seconds_count", "api_service"), each(func(l model.Metric, v float64) { svc(l).LatencyCount = v }))
	instant(inc("usage_response_size_bytes_total", "api_service"), each(func(l model.Metric, v float64) { svc(l).Bytes = v }))
	instant(inc("usage_duplicate_requests_total", "api_service"), each(func(l model.Metric, v float64) { svc(l).Duplicates = v }))
	instant(inc("usage_egress_cost_dollars_total", "api_service"), each(func(l model.Metric, v float64) { svc(l).Egress = v }))
	instant(inc("usage_cost_dollars_total", "api_service, model"), each(func(l model.Metric, v float64) {
		sv := svc(l)
		sv.Cost += v
		sv.ModelCost[string(l["model"])] += v
		if m := string(l["model"]); m != "" {
			s.model(m).Cost += v
		}
	}))
	instant(fmt.Sprintf("count by (api_service) (%s > 0)", inc("usage_user_requests_total", "api_service, user")),
		each(func(l model.Metric, v float64) { svc(l).UniqueUsers = int(v) }))

	ep := func(l model.Metric) *EndpointUsage { return s.endpoint(string(l["route"]), string(l["api_service"])) }
	instant(inc("usage_requests_total", "api_service, route"), each(func(l model.Metric, v float64) { ep(l).Calls = v }))
	instant(inc(`usage_requests_total{code!~"[23].."}`, "api_service, route"), each(func(l model.Metric, v float64) { ep(l).Errors = v }))
	instant(inc("usage_request_duration_seconds_sum", "api_service, route"), each(func(l model.Metric, v float64) { ep(l).LatencySum = v }))
	instant(inc("usage_request_duration_seconds_count", "api_service, route"), each(func(l model.Metric, v float64) { ep(l).LatencyCount = v }))

	instant(inc("usage_llm_tokens_total", "model, direction"), each(func(l model.Metric, v float64) {
		s.model(string(l["model"])).Tokens[string(l["direction"])] = v
	}))
	instant(inc("usage_llm_requests_total", "model, status"), each(func(l model.Metric, v float64) {
		m := s.model(string(l["model"]))
		m.Calls += v
		if l["status"] == "failure" {
			m.Failures += v
		}
	}))
	instant(inc("usage_llm_request_tokens_bucket", "model, le"), each(func(l model.Metric, v float64) {
		if le, err := strconv.ParseFloat(string(l["le"]), 64); err == nil {
			s.model(string(l["model"])).PromptTokens[le] = v
		}
	}))

	usr := func(l model.Metric) *UserUsage { return s.user(string(l["user"]), string(l["tier"])) }
	instant(inc("usage_user_requests_total", "user, tier, api_service"), each(func(l model.Metric, v float64) {
		u := usr(l)
		u.Calls += v
		u.ByService[string(l["api_service"])] += v
	}))
	instant(inc("usage_user_cost_dollars_total", "user, tier"), each(func(l model.Metric, v float64) { usr(l).Cost += v }))
	instant(inc("usage_user_tokens_total", "user, tier"), each(func(l model.Metric, v float64) { usr(l).Tokens += v }))

	qs := quotaSet{}
	gauge("max(usage_quota_period_start_timestamp_seconds)", each(func(_ model.Metric, v float64) { qs.start = v }))
	gauge("max(usage_quota_period_end_timestamp_seconds)", each(func(_ model.Metric, v float64) { qs.end = v }))
	// Exporters sharing a ledger in Redis all report the same totals: max, not sum.
	gauge("max by (user, tier, resource) (usage_quota_used)", each(func(l model.Metric, v float64) {
		qs.add(string(l["user"]), string(l["tier"]), string(l["resource"]), v)
	}))

	lat := &s.Latency // NaN until known (newSnapshot)
	for _, qq := range []struct {
		q   float64
		dst *float64
	}{{0.5, &lat.P50}, {0.95, &lat.P95}, {0.99, &lat.P99}} {
		dst := qq.dst
		instant(fmt.Sprintf("histogram_quantile(%g, %s)", qq.q, inc("usage_request_duration_seconds_bucket", "le")),
			each(func(_ model.Metric, v float64) { *dst = v }))
	}

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
	profile("sum(usage_requests_total)", func(end time.Time, inc float64) {
		s.Hourly[inStep(end).Hour()] += inc
		day(end).Calls += inc
	})
	// Two sums: the per-call cost and the egress series of a service share
	// their labels.
	for _, metric := range []string{"usage_cost_dollars_total", "usage_egress_cost_dollars_total"} {
		profile("sum("+metric+")", func(end time.Time, inc float64) { day(end).Cost += inc })
	}

	var gpuUtil, gpuCount float64
	gpuMetric := ""
	instant(fmt.Sprintf("avg_over_time((avg(DCGM_FI_DEV_GPU_UTIL))[%dd:5m]) / 100", days), each(func(_ model.Metric, v float64) {
		gpuUtil, gpuMetric = v, "DCGM_FI_DEV_GPU_UTIL"
	}))
	gauge("count(last_over_time(DCGM_FI_DEV_GPU_UTIL[1h]))", each(func(_ model.Metric, v float64) { gpuCount = v }))
	var nvUtil, nvCount float64
	instant(fmt.Sprintf("avg_over_time((avg(nvidia_gpu_duty_cycle))[%dd:5m]) / 100", days), each(func(_ model.Metric, v float64) { nvUtil = v }))
	gauge("count(last_over_time(nvidia_gpu_duty_cycle[1h]))", each(func(_ model.Metric, v float64) { nvCount = v }))

	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.averageLatency()
	for _, d := range daily {
		s.Daily = append(s.Daily, *d)
	}
	sortDays(s.Daily)
	s.Quotas = qs.list(now)
	switch {
	case gpuMetric != "" && gpuCount > 0:
		s.GPU = &GPUUsage{Utilization: gpuUtil, GPUs: int(gpuCount), Metric: gpuMetric}
	case nvCount > 0:
		s.GPU = &GPUUsage{Utilization: nvUtil, GPUs: int(nvCount), Metric: "nvidia_gpu_duty_cycle"}
	}
	if s.TotalCalls() == 0 {
		s.Missing["requests"] = "no usage_requests_total increase in the window: is Prometheus scraping the exporter?"
	}
	return s, nil
}
