package window

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// exact is the nearest-rank quantile: the observation of rank ceil(q x n).
func exact(sorted []float64, q float64) float64 {
	k := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(k, 1)-1]
}

// On heavy-tailed request times the sketch's quantiles are within 4.5% of
// the exact ones (2^(1/16) - 1 = 4.4% is the bound of a schema 3 bucket's
// geometric middle), including over merged sketches.
func TestSketchQuantilesWithinBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sets := map[string]func() float64{
		"lognormal sigma 1.5": func() float64 { return math.Exp(rng.NormFloat64()*1.5 - 1) },
		"pareto alpha 1.2":    func() float64 { return 0.05 * math.Pow(1-rng.Float64(), -1/1.2) },
		"bimodal":             func() float64 { return []float64{0.02, 3}[rng.IntN(2)] * (1 + rng.Float64()) },
		"with zeros":          func() float64 { return math.Max(0, rng.NormFloat64()*0.1) },
	}
	for name, gen := range sets {
		var a, b Sketch
		values := make([]float64, 0, 20000)
		for i := range 20000 {
			v := gen()
			values = append(values, v)
			if i%3 == 0 {
				a.Add(v, 1)
			} else {
				b.Add(v, 1)
			}
		}
		a.Merge(&b)
		slices.Sort(values)
		for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999} {
			want, got := exact(values, q), a.Quantile(q)
			if want == 0 {
				if got != 0 {
					t.Errorf("%s p%v: %v, want 0", name, q*100, got)
				}
				continue
			}
			if rel := math.Abs(got-want) / want; rel > 0.045 {
				t.Errorf("%s p%v: %v, exact %v (%.1f%% off)", name, q*100, got, want, rel*100)
			}
		}
		if a.Count() != 20000 {
			t.Errorf("%s: count %d", name, a.Count())
		}
	}
	var empty Sketch
	if !math.IsNaN(empty.Quantile(0.5)) {
		t.Error("an empty sketch has a quantile")
	}
}

// The buckets are client_golang's schema 3 native buckets: 1 ends bucket 0,
// 2 ends bucket 8, 2^(1/8) bucket 1.
func TestSketchBuckets(t *testing.T) {
	for v, want := range map[float64]int{1: 0, 1.0000001: 1, math.Exp2(1.0 / 8): 1, 2: 8, 0.5: -8, 0.25: -16} {
		if got := bucketKey(v); got != want {
			t.Errorf("key(%v) = %d, want %d", v, got, want)
		}
	}
}
