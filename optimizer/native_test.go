package optimizer

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// histogramOf renders observations as Prometheus' API returns a native
// histogram of schema 3 (the exporter's: factor 1.1).
func histogramOf(obs []float64) *model.SampleHistogram {
	counts := map[int]float64{}
	h := &model.SampleHistogram{}
	for _, v := range obs {
		k := int(math.Ceil(math.Log2(v) * 8))
		counts[k]++
		h.Count++
		h.Sum += model.FloatString(v)
	}
	keys := make([]int, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h.Buckets = append(h.Buckets, &model.HistogramBucket{Boundaries: 0, Lower: model.FloatString(math.Exp2(float64(k-1) / 8)),
			Upper: model.FloatString(math.Exp2(float64(k) / 8)), Count: model.FloatString(counts[k])})
	}
	return h
}

// nativeQuerier answers the native histogram query: the first observations
// by the start of the window, all of them by its end.
type nativeQuerier struct {
	recordingQuerier
	start         time.Time
	before, after []float64
}

func (q *nativeQuerier) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	q.recordingQuerier.Query(ctx, query, ts)
	if query != cumulative("usage_request_duration_seconds", "api_service") {
		return nil, nil
	}
	obs := q.after
	if !ts.After(q.start) {
		obs = q.before
	}
	return model.Vector{{Metric: model.Metric{"api_service": "llm"}, Histogram: histogramOf(obs)}}, nil
}

// With the native histograms in Prometheus, the window's quantiles come from
// their buckets, the end's less the start's: within 4.5% of the exact ones
// of the observations in the window, on heavy-tailed request times. Without
// classic buckets stored, the count and sum come from them too.
func TestPrometheusNativeQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	var all []float64
	for range 30000 {
		all = append(all, math.Exp(rng.NormFloat64()*1.2-0.5))
	}
	now := time.Date(2025, 11, 16, 0, 0, 0, 0, time.UTC)
	q := &nativeQuerier{start: now.Add(-7 * 24 * time.Hour), before: all[:10000], after: all}
	s, err := (&PrometheusSource{Q: q}).Snapshot(context.Background(), 7, now)
	if err != nil {
		t.Fatal(err)
	}
	window := slices.Clone(all[10000:])
	slices.Sort(window)
	sv := s.Services["llm"]
	for _, c := range []struct {
		q        float64
		got, all float64
	}{{0.5, sv.P50, s.Latency.P50}, {0.95, sv.P95, s.Latency.P95}, {0.99, sv.P99, s.Latency.P99}} {
		want := window[int(math.Ceil(c.q*float64(len(window))))-1]
		if math.Abs(c.got-want)/want > 0.045 || c.got != c.all {
			t.Errorf("p%v: %v (overall %v), exact %v", c.q*100, c.got, c.all, want)
		}
	}
	var sum float64
	for _, v := range window {
		sum += v
	}
	if sv.LatencyCount != 20000 || math.Abs(sv.LatencySum-sum) > 1e-6 {
		t.Errorf("count %v sum %v, want 20000 and %v", sv.LatencyCount, sv.LatencySum, sum)
	}
}
