package window

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
)

// Distinct counts distinct users: a HyperLogLog sketch of 2^14 registers
// (0.81% relative standard error), fed 64-bit hashes of user ids, with
// Ertl's improved estimator ("New cardinality estimation algorithms for
// HyperLogLog sketches", 2017), which needs no bias tables and is accurate
// from one user to billions. Sketches of days, services and exporters merge
// into the sketch of their union: the count of users across them, which
// adding daily counts would overstate.
//
// Small sketches are sparse (the registers that are set), so a day of a
// service with few users costs a few bytes; past 3,072 set registers they
// turn dense (16 KiB).
type Distinct struct {
	sparse []uint32 // sorted register<<8 | value, while dense is nil
	dense  []uint8
}

const (
	distinctP     = 14
	distinctM     = 1 << distinctP
	distinctQ     = 64 - distinctP
	sparseMax     = 3072
	DistinctError = 1.04 / 128 // 1.04/sqrt(2^14): the relative standard error
)

// Add counts a hash.
func (d *Distinct) Add(h uint64) {
	reg := uint32(h >> distinctQ)
	rho := uint8(min(bits.LeadingZeros64(h<<distinctP|1<<(distinctP-1))+1, distinctQ+1))
	d.set(reg, rho)
}

func (d *Distinct) set(reg uint32, rho uint8) {
	if d.dense != nil {
		d.dense[reg] = max(d.dense[reg], rho)
		return
	}
	i, found := slices.BinarySearchFunc(d.sparse, reg, func(e, r uint32) int { return int(e>>8) - int(r) })
	if found {
		if uint8(d.sparse[i]) < rho {
			d.sparse[i] = reg<<8 | uint32(rho)
		}
		return
	}
	d.sparse = slices.Insert(d.sparse, i, reg<<8|uint32(rho))
	if len(d.sparse) > sparseMax {
		d.toDense()
	}
}

func (d *Distinct) toDense() {
	d.dense = make([]uint8, distinctM)
	for _, e := range d.sparse {
		d.dense[e>>8] = uint8(e)
	}
	d.sparse = nil
}

// Merge adds o's users.
func (d *Distinct) Merge(o *Distinct) {
	if o == nil {
		return
	}
	if o.dense != nil {
		if d.dense == nil {
			d.toDense()
		}
		for i, v := range o.dense {
			d.dense[i] = max(d.dense[i], v)
		}
		return
	}
	for _, e := range o.sparse {
		d.set(e>>8, uint8(e))
	}
}

// Empty reports whether no hash was added (a nil sketch is empty).
func (d *Distinct) Empty() bool { return d == nil || d.dense == nil && len(d.sparse) == 0 }

// Estimate is the number of distinct hashes added.
func (d *Distinct) Estimate() float64 {
	if d.Empty() {
		return 0
	}
	var c [distinctQ + 2]float64 // registers by value
	if d.dense != nil {
		for _, v := range d.dense {
			c[v]++
		}
	} else {
		c[0] = distinctM - float64(len(d.sparse))
		for _, e := range d.sparse {
			c[uint8(e)]++
		}
	}
	const m = distinctM
	z := m * tau(1-c[distinctQ+1]/m)
	for k := distinctQ; k >= 1; k-- {
		z = 0.5 * (z + c[k])
	}
	z += m * sigma(c[0]/m)
	return m * m / (2 * math.Ln2) / z
}

// Count is the estimate, rounded.
func (d *Distinct) Count() int { return int(math.Round(d.Estimate())) }

func sigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if z == prev {
			return z
		}
	}
}

func tau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == prev {
			return z / 3
		}
	}
}

// AppendBinary appends the sketch's encoding: 0 and the sparse registers
// (count, then each as the varint of its difference to the one before), or
// 1 and the dense registers.
func (d *Distinct) AppendBinary(b []byte) []byte {
	if d.dense != nil {
		return append(append(b, 1), d.dense...)
	}
	b = binary.AppendUvarint(append(b, 0), uint64(len(d.sparse)))
	prev := uint32(0)
	for _, e := range d.sparse {
		b = binary.AppendUvarint(b, uint64(e-prev))
		prev = e
	}
	return b
}

var errDistinct = errors.New("window: corrupt distinct-user sketch")

// DecodeDistinct reads a sketch from the start of b and returns the rest.
func DecodeDistinct(b []byte) (*Distinct, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errDistinct
	}
	d := &Distinct{}
	switch b[0] {
	case 1:
		if len(b) < 1+distinctM {
			return nil, nil, errDistinct
		}
		d.dense = slices.Clone(b[1 : 1+distinctM])
		for _, v := range d.dense {
			if v > distinctQ+1 {
				return nil, nil, errDistinct
			}
		}
		return d, b[1+distinctM:], nil
	case 0:
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > sparseMax || n > uint64(len(b)) {
			return nil, nil, errDistinct
		}
		b = b[1+k:]
		d.sparse = make([]uint32, 0, n)
		prev := uint64(0)
		for range n {
			delta, k := binary.Uvarint(b)
			if k <= 0 {
				return nil, nil, errDistinct
			}
			b = b[k:]
			e := prev + delta
			if (delta == 0 && len(d.sparse) > 0) || e >= distinctM<<8 || uint8(e) == 0 || uint8(e) > distinctQ+1 ||
				(len(d.sparse) > 0 && e>>8 == uint64(d.sparse[len(d.sparse)-1]>>8)) {
				return nil, nil, errDistinct
			}
			d.sparse = append(d.sparse, uint32(e))
			prev = e
		}
		return d, b, nil
	}
	return nil, nil, errDistinct
}
