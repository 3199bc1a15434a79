package optimizer

import (
	"math"
	"sort"
	"time"

	"github.com/prometheus/common/model"
)

// native is a native histogram's buckets over a window: (lower, upper] ->
// count, with its count and sum.
type native struct {
	count, sum float64
	buckets    map[[2]float64]float64
}

func (n *native) add(h *model.SampleHistogram, sign float64) {
	n.count += sign * float64(h.Count)
	n.sum += sign * float64(h.Sum)
	for _, b := range h.Buckets {
		n.buckets[[2]float64{float64(b.Lower), float64(b.Upper)}] += sign * float64(b.Count)
	}
}

func (n *native) merge(o *native) {
	n.count += o.count
	n.sum += o.sum
	for k, v := range o.buckets {
		n.buckets[k] += v
	}
}

// quantile is the geometric middle of the bucket holding the observation of
// rank ceil(q x count) (0 for the zero bucket): within 4.4% of it for the
// exporter's buckets (schema 3); NaN without observations.
func (n *native) quantile(q float64) float64 {
	if n.count <= 0 {
		return math.NaN()
	}
	keys := make([][2]float64, 0, len(n.buckets))
	for k, v := range n.buckets {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][1] < keys[j][1] })
	rank := math.Max(math.Ceil(q*n.count), 1)
	var seen float64
	for _, k := range keys {
		seen += n.buckets[k]
		if seen >= rank {
			if k[0] <= 0 {
				return 0
			}
			return math.Sqrt(k[0] * k[1])
		}
	}
	if len(keys) == 0 {
		return math.NaN()
	}
	return keys[len(keys)-1][1]
}

// nativeWindow hands on, by group, the native histogram the window added:
// the buckets at its end less those at its start. Nothing when Prometheus
// stores the histogram's classic buckets only.
func (pq *promQueries) nativeWindow(metric, by string, start, end time.Time, f func(l model.Metric, n *native)) {
	q := cumulative(metric, by)
	pq.run(q, func() error {
		at, err := pq.ends(q, start, end)
		if err != nil {
			return err
		}
		before := map[model.Fingerprint]*model.SampleHistogram{}
		for _, smp := range at[0] {
			if smp.Histogram != nil {
				before[smp.Metric.Fingerprint()] = smp.Histogram
			}
		}
		pq.mu.Lock()
		defer pq.mu.Unlock()
		for _, smp := range at[1] {
			if smp.Histogram == nil {
				continue
			}
			n := &native{buckets: map[[2]float64]float64{}}
			n.add(smp.Histogram, 1)
			// Lower at the end than at the start: the exporter lost its
			// state; the end's figures are all there is.
			if b := before[smp.Metric.Fingerprint()]; b != nil && float64(b.Count) <= n.count {
				n.add(b, -1)
			}
			f(smp.Metric, n)
		}
		return nil
	})
}
