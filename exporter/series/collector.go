package series

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Describe implements prometheus.Collector: the set's families.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.families {
		ch <- f.desc()
	}
}

// Collect implements prometheus.Collector: the published snapshot, which
// counts as scraped (a registry gathering the set exposes it).
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	if snap := s.published.Load(); snap != nil {
		snap.Served()
		snap.Collect(ch)
	}
}

func (f *Family) desc() *prometheus.Desc {
	return prometheus.NewDesc(f.name, f.help, f.labels, nil)
}

// Collect sends the snapshot's series as client_golang metrics: counters
// and histograms (classic and native buckets) with created timestamps.
func (snap *Snapshot) Collect(ch chan<- prometheus.Metric) {
	for i := range snap.fams {
		fs := &snap.fams[i]
		if len(fs.series) == 0 {
			continue
		}
		desc := fs.f.desc()
		for j, se := range fs.series {
			m := &metric{desc: desc, f: fs.f, s: se, released: j < fs.released}
			if fs.f.kind == Counter {
				m.value = fs.values[j]
			} else {
				m.hist = &fs.hists[j]
			}
			ch <- m
		}
	}
}

// metric is one series of a snapshot, as a client_golang Metric.
type metric struct {
	desc     *prometheus.Desc
	f        *Family
	s        *Series
	released bool
	value    float64
	hist     *histSnapshot
}

func (m *metric) Desc() *prometheus.Desc { return m.desc }

func (m *metric) Write(out *dto.Metric) error {
	for _, i := range m.f.order {
		out.Label = append(out.Label, &dto.LabelPair{Name: &m.f.labels[i], Value: &m.s.values[i]})
	}
	created := timestamppb.New(time.UnixMilli(m.s.created))
	if m.f.kind == Counter {
		v := 0.0
		if m.released {
			v = m.value
		}
		out.Counter = &dto.Counter{Value: &v, CreatedTimestamp: created}
		return nil
	}
	var h histSnapshot
	if m.released {
		h = *m.hist
	}
	count, sum := h.count, h.sum
	dh := &dto.Histogram{SampleCount: &count, SampleSum: &sum, CreatedTimestamp: created}
	var cum uint64
	for k, le := range m.f.hist.Buckets {
		if m.released {
			cum += h.counts[k]
		}
		dh.Bucket = append(dh.Bucket, &dto.Bucket{CumulativeCount: new(cum), UpperBound: new(le)})
	}
	if m.f.schema != math.MinInt32 {
		schema := m.f.schema
		if m.released {
			schema = h.schema
		}
		zt, zero := zeroThreshold, h.zero
		dh.Schema, dh.ZeroThreshold, dh.ZeroCount = &schema, &zt, &zero
		dh.PositiveSpan, dh.PositiveDelta = spans(h.pos)
		dh.NegativeSpan, dh.NegativeDelta = spans(h.neg)
	}
	out.Histogram = dh
	return nil
}

// spans encodes a window of native buckets as client_golang does: a new
// span after a gap of more than two empty buckets, deltas between counts.
func spans(w window) ([]*dto.BucketSpan, []int64) {
	var (
		out    []*dto.BucketSpan
		deltas []int64
		prev   int64
		next   int
	)
	w.each(func(k int, n uint64) {
		gap := k - next
		if len(out) == 0 || gap > 2 {
			out = append(out, &dto.BucketSpan{Offset: new(int32(gap)), Length: new(uint32(0))})
		} else {
			for range gap {
				*out[len(out)-1].Length++
				deltas = append(deltas, -prev)
				prev = 0
			}
		}
		*out[len(out)-1].Length++
		deltas = append(deltas, int64(n)-prev)
		prev = int64(n)
		next = k + 1
	})
	return out, deltas
}
