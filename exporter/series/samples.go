package series

// SampleID identifies a sample series of a Set across calls of Samples: a
// series, and for a histogram which of its _bucket (0..len(buckets)),
// _sum (-1) or _count (-2) series.
type SampleID struct {
	Series *Series
	Part   int
}

// Samples hands on each series' current value as Prometheus stores a scrape
// of it: a counter under its name, a histogram as cumulative _bucket series
// (le as the OpenMetrics exposition writes it, which Prometheus 2.x
// negotiates), _sum and _count. labels renders the label name, value pairs
// (sorted by name, le last) on demand: they are valid until f returns, and
// a caller that keeps them by id renders them once. For the backfill, on the
// goroutine that updates the series; native buckets are not handed on.
func (s *Set) Samples(f func(id SampleID, name string, labels func() []string, v float64)) {
	var pairs []string
	var num []byte
	for _, fam := range s.families {
		for _, se := range fam.series {
			render := func(part int) func() []string {
				return func() []string {
					pairs = pairs[:0]
					for _, i := range fam.order {
						pairs = append(pairs, fam.labels[i], se.values[i])
					}
					switch {
					case part >= len(fam.hist.Buckets) && fam.kind == Histogram:
						pairs = append(pairs, "le", "+Inf")
					case part >= 0 && fam.kind == Histogram:
						num = appendFloat(num[:0], fam.hist.Buckets[part], OpenMetrics)
						pairs = append(pairs, "le", string(num))
					}
					return pairs
				}
			}
			if fam.kind == Counter {
				f(SampleID{se, 0}, fam.name, render(0), se.v)
				continue
			}
			h := se.h
			var cum uint64
			for k := range fam.hist.Buckets {
				cum += h.counts[k]
				f(SampleID{se, k}, fam.name+"_bucket", render(k), float64(cum))
			}
			f(SampleID{se, len(fam.hist.Buckets)}, fam.name+"_bucket", render(len(fam.hist.Buckets)), float64(h.count))
			f(SampleID{se, -1}, fam.name+"_sum", render(-1), h.sum)
			f(SampleID{se, -2}, fam.name+"_count", render(-2), float64(h.count))
		}
	}
}
