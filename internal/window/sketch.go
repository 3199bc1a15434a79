package window

import (
	"math"
	"slices"
)

// Sketch counts request times in exponential buckets, those of a native
// histogram of schema 3: bucket k holds 2^((k-1)/8) < v <= 2^(k/8), each
// about 9% wide. A quantile read as the geometric middle of its bucket is
// within 2^(1/16) - 1 = 4.4% of the exact one (the observation of that
// rank), whatever the distribution.
type Sketch struct {
	Zero   uint64   `json:"zero"`  // observations of 0 (or less)
	First  int      `json:"first"` // key of Counts[0]
	Counts []uint64 `json:"counts"`
}

// SketchSchema is the schema of the buckets.
const SketchSchema = 3

// bounds8 are the fractions (of math.Frexp) at which schema 3's buckets
// end within a power of two, as client_golang's native histograms have them.
var bounds8 = func() []float64 {
	b := make([]float64, 8)
	for i := range b {
		b[i] = math.Exp2(float64(i)/8) / 2
	}
	return b
}()

// bucketKey is the key of v > 0.
func bucketKey(v float64) int {
	if math.IsInf(v, 1) {
		v = math.MaxFloat64
	}
	frac, exp := math.Frexp(v)
	k, _ := slices.BinarySearch(bounds8, frac)
	return k + (exp-1)*8
}

// Add records an observation (n of them).
func (s *Sketch) Add(v float64, n uint64) {
	if !(v > 0) {
		s.Zero += n
		return
	}
	s.addKey(bucketKey(v), n)
}

func (s *Sketch) addKey(key int, n uint64) {
	switch {
	case s.Counts == nil:
		s.First, s.Counts = key, make([]uint64, 1, 4)
	case key < s.First:
		grow := s.First - key
		s.Counts = append(make([]uint64, grow, grow+len(s.Counts)), s.Counts...)
		s.First = key
	case key >= s.First+len(s.Counts):
		s.Counts = append(s.Counts, make([]uint64, key-s.First-len(s.Counts)+1)...)
	}
	s.Counts[key-s.First] += n
}

// Merge adds o's counts.
func (s *Sketch) Merge(o *Sketch) {
	if o == nil {
		return
	}
	s.Zero += o.Zero
	for i, n := range o.Counts {
		if n > 0 {
			s.addKey(o.First+i, n)
		}
	}
}

// Count is the number of observations.
func (s *Sketch) Count() uint64 {
	n := s.Zero
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Quantile is the q-quantile (0 < q <= 1): the geometric middle of the
// bucket that holds the observation of rank ceil(q x count); NaN when
// empty.
func (s *Sketch) Quantile(q float64) float64 {
	total := s.Count()
	if total == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = min(max(rank, 1), total)
	if rank <= s.Zero {
		return 0
	}
	seen := s.Zero
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			return math.Exp2((float64(s.First+i) - 0.5) / 8)
		}
	}
	return math.Exp2(float64(s.First+len(s.Counts)-1) / 8)
}

// Clone copies the sketch.
func (s *Sketch) Clone() *Sketch {
	if s == nil {
		return nil
	}
	return &Sketch{Zero: s.Zero, First: s.First, Counts: slices.Clone(s.Counts)}
}
