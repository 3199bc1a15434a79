package window

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func users(from, to int) *Distinct {
	d := &Distinct{}
	for i := from; i < to; i++ {
		d.Add(xxhash.Sum64String(fmt.Sprintf("user-%06d@example.com", i)))
	}
	return d
}

// The estimate is within three standard errors (2.4%) from one user to
// 200,000, sparse and dense; repeats count once.
func TestDistinctAccuracy(t *testing.T) {
	for _, n := range []int{1, 2, 10, 100, 1000, 3000, 5000, 10000, 50000, 200000} {
		d := users(0, n)
		d.Merge(users(0, n/2)) // repeats
		got := d.Estimate()
		if rel := math.Abs(got-float64(n)) / float64(n); rel > 3*DistinctError {
			t.Errorf("%d users: estimate %.1f (%.2f%% off, more than 3 standard errors)", n, got, 100*rel)
		}
	}
	if got := (&Distinct{}).Estimate(); got != 0 {
		t.Errorf("empty sketch: %v", got)
	}
}

// Merging sketches of parts gives the sketch of the whole: the registers
// are the same, so is the estimate.
func TestDistinctMerge(t *testing.T) {
	for _, n := range []int{500, 40000} {
		whole := users(0, n)
		a, b := users(0, n/2+100), users(n/2-100, n)
		a.Merge(b)
		if a.Estimate() != whole.Estimate() {
			t.Errorf("%d users: merged %v, whole %v", n, a.Estimate(), whole.Estimate())
		}
	}
}

func TestDistinctEncoding(t *testing.T) {
	for _, n := range []int{0, 1, 3000, 20000} {
		d := users(0, n)
		data := d.AppendBinary([]byte("x"))
		back, rest, err := DecodeDistinct(append(data[1:], "tail"...))
		if err != nil || string(rest) != "tail" {
			t.Fatalf("%d users: %v, rest %q", n, err, rest)
		}
		if back.Estimate() != d.Estimate() || !bytes.Equal(back.AppendBinary(nil), data[1:]) {
			t.Errorf("%d users: round trip %v, want %v", n, back.Estimate(), d.Estimate())
		}
		if n > 0 {
			if _, _, err := DecodeDistinct(data[1 : len(data)-1]); err == nil && n > 3000 {
				t.Errorf("%d users: a truncated sketch decoded", n)
			}
		}
	}
	for _, bad := range [][]byte{nil, {2}, {0, 5, 1}, {1, 1, 2}} {
		if _, _, err := DecodeDistinct(bad); err == nil {
			t.Errorf("%v decoded", bad)
		}
	}
}

func BenchmarkDistinctAdd(b *testing.B) {
	hashes := make([]uint64, 1<<16)
	for i := range hashes {
		hashes[i] = xxhash.Sum64String(fmt.Sprint(i))
	}
	for _, n := range []int{1000, 1 << 16} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			d := &Distinct{}
			i := 0
			for b.Loop() {
				d.Add(hashes[i%n])
				i++
			}
		})
	}
}
