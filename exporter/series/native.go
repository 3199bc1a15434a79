package series

import (
	"math"
	"slices"
)

// histogram is a classic histogram with, optionally, the native
// (exponential) buckets of client_golang's NativeHistogram: bucket k of
// schema s holds (2^(2^-s))^(k-1) < |v| <= (2^(2^-s))^k. Positive and
// negative buckets are dense windows of counts from their first key.
type histogram struct {
	counts []uint64 // per classic bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64

	schema    int32 // math.MinInt32 without native buckets
	zero      uint64
	pos, neg  window
	populated int // native buckets with a count
}

// window holds counts of consecutive keys from first.
type window struct {
	first  int
	counts []uint64
}

func newHistogram(classic int, schema int32) *histogram {
	return &histogram{counts: make([]uint64, classic+1), schema: schema}
}

// zeroThreshold is client_golang's default: observations this close to
// zero go to the zero bucket.
const zeroThreshold = 2.938735877055719e-39

// add increments key by n and reports whether the bucket was empty.
func (w *window) add(key int, n uint64) bool {
	switch {
	case w.counts == nil:
		w.first, w.counts = key, make([]uint64, 1, 8)
	case key < w.first:
		grow := w.first - key
		w.counts = append(make([]uint64, grow, grow+len(w.counts)), w.counts...)
		w.first = key
	case key >= w.first+len(w.counts):
		w.counts = append(w.counts, make([]uint64, key-w.first-len(w.counts)+1)...)
	}
	c := &w.counts[key-w.first]
	empty := *c == 0
	*c += n
	return empty
}

// each calls f for every populated bucket, ascending.
func (w *window) each(f func(key int, n uint64)) {
	for i, n := range w.counts {
		if n > 0 {
			f(w.first+i, n)
		}
	}
}

// key is the native bucket of |v| > 0 in schema, as client_golang computes it.
func key(v float64, schema int32) int {
	isInf := math.IsInf(v, 0)
	if isInf {
		v = math.MaxFloat64
	}
	frac, exp := math.Frexp(math.Abs(v))
	var k int
	if schema > 0 {
		bounds := nativeBounds[schema]
		k, _ = slices.BinarySearch(bounds, frac)
		k += (exp - 1) * len(bounds)
	} else {
		k = exp
		if frac == 0.5 {
			k--
		}
		offset := (1 << -schema) - 1
		k = (k + offset) >> -schema
	}
	if isInf {
		k++
	}
	return k
}

func (h *histogram) observeNative(v float64, maxBuckets int) {
	var created bool
	switch {
	case v > zeroThreshold:
		created = h.pos.add(key(v, h.schema), 1)
	case v < -zeroThreshold:
		created = h.neg.add(key(v, h.schema), 1)
	default:
		h.zero++
	}
	if created {
		h.populated++
	}
	for maxBuckets > 0 && h.populated > maxBuckets && h.schema > -4 {
		h.halveResolution()
	}
}

// halveResolution merges pairs of buckets into the buckets of the next
// lower schema, as client_golang's doubleBucketWidth does: key k goes to
// (k+1)/2 for k > 0 and k/2 otherwise.
func (h *histogram) halveResolution() {
	h.schema--
	h.populated = 0
	for _, w := range []*window{&h.pos, &h.neg} {
		old := *w
		*w = window{}
		old.each(func(k int, n uint64) {
			if k > 0 {
				k++
			}
			if w.add(k/2, n) {
				h.populated++
			}
		})
	}
}

// pickSchema is the largest schema from -4 to 8 whose growth factor
// 2^(2^-schema) is at most factor, as client_golang picks it.
func pickSchema(factor float64) int32 {
	floor := math.Floor(math.Log2(math.Log2(factor)))
	switch {
	case floor <= -8:
		return 8
	case floor >= 4:
		return -4
	default:
		return -int32(floor)
	}
}

// nativeBounds are, per schema from 0 to 8, the fractions (of a power of
// two) at which buckets end; generated as client_golang documents it.
var nativeBounds = func() [][]float64 {
	b := make([][]float64, 9)
	n := 1
	for i := range b {
		bounds := []float64{0.5}
		factor := math.Exp2(math.Exp2(float64(-i)))
		for j := 0; j < n-1; j++ {
			if (j+1)%2 == 0 {
				bounds = append(bounds, b[i-1][j/2+1]) // the previous schema's, for precision
			} else {
				bounds = append(bounds, bounds[j]*factor)
			}
		}
		n *= 2
		b[i] = bounds
	}
	return b
}()
