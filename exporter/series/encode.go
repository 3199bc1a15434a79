package series

import (
	"github.com/usage-exporter/usage-exporter/internal/wire"

	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// The encoding of a snapshot in a checkpoint: compact and versioned.
//
//	magic "USR1"
//	families: count, then each: name, kind, label names, classic bucket
//	bounds (histograms), released, series count, then each series: label
//	values, created (ms), and a counter's value or a histogram's counts,
//	sum, count and native buckets.
//
// Strings go through a table: the first occurrence is written out, later
// ones refer to it by number (user ids recur across families). Integers are
// varints, floats 8 bytes little-endian.
const magic = "USR1"

// Encode appends the snapshot's encoding to b.
func (snap *Snapshot) Encode(b []byte) []byte {
	// Sized as the last encoding was: at 50,000 users it is megabytes.
	var hint [2]int
	if snap.set != nil {
		hint = snap.set.encoded
	}
	if b == nil {
		b = make([]byte, 0, hint[0]+hint[0]/8)
	}
	e := encoder{b: append(b, magic...), strings: make(map[string]uint64, hint[1])}
	defer func() {
		if snap.set != nil {
			snap.set.encoded = [2]int{len(e.b), len(e.strings)}
		}
	}()
	e.uvarint(uint64(len(snap.fams)))
	for i := range snap.fams {
		fs := &snap.fams[i]
		f := fs.f
		e.string(f.name)
		e.b = append(e.b, byte(f.kind))
		e.uvarint(uint64(len(f.labels)))
		for _, l := range f.labels {
			e.string(l)
		}
		if f.kind == Histogram {
			e.uvarint(uint64(len(f.hist.Buckets)))
			for _, le := range f.hist.Buckets {
				e.float(le)
			}
		}
		e.uvarint(uint64(fs.released))
		e.uvarint(uint64(len(fs.series)))
		for j, se := range fs.series {
			for _, v := range se.values {
				e.string(v)
			}
			e.varint(se.created)
			if f.kind == Counter {
				e.float(fs.values[j])
				continue
			}
			h := &fs.hists[j]
			for _, c := range h.counts {
				e.uvarint(c)
			}
			e.float(h.sum)
			e.uvarint(h.count)
			e.varint(int64(h.schema))
			e.uvarint(h.zero)
			e.window(h.pos)
			e.window(h.neg)
		}
	}
	return e.b
}

type encoder struct {
	b       []byte
	strings map[string]uint64
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) float(v float64)  { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }

// string writes 0 and the string the first time, its number + 1 after.
func (e *encoder) string(s string) {
	if n, ok := e.strings[s]; ok {
		e.uvarint(n + 1)
		return
	}
	e.strings[s] = uint64(len(e.strings))
	e.uvarint(0)
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) window(w window) {
	e.varint(int64(w.first))
	e.uvarint(uint64(len(w.counts)))
	for _, c := range w.counts {
		e.uvarint(c)
	}
}

// Restored reports what Restore took back.
type Restored struct {
	Series int
	// Skipped names families of the checkpoint the set has not (or has with
	// other labels, kind or buckets): their series start again from zero.
	Skipped []string
}

// Restore sets the set's series to an encoded snapshot's: the series are
// created with their creation times and values, and those the snapshot
// showed at zero stay at zero until a scrape sees them. The set must have
// no series yet.
func (s *Set) Restore(data []byte) (Restored, error) {
	var r Restored
	d := decoder{Reader: wire.NewReader(data, errShort)}
	if len(data) < len(magic) || string(data[:len(magic)]) != magic {
		return r, errors.New("series: not an encoded snapshot")
	}
	d.B = d.B[len(magic):]
	s.mu.Lock()
	fams := slices.Clone(s.families)
	s.mu.Unlock()
	nf := d.Uvarint()
	for range nf {
		name, kind := d.string(), Kind(d.Byte())
		labels := make([]string, d.Count(1))
		for i := range labels {
			labels[i] = d.string()
		}
		var buckets []float64
		if kind == Histogram {
			buckets = make([]float64, d.Count(8))
			for i := range buckets {
				buckets[i] = d.Float64()
			}
		}
		released, n := d.Uvarint(), d.Count(1)
		var f *Family
		for _, g := range fams {
			if g.name == name && g.kind == kind && slices.Equal(g.labels, labels) &&
				(kind != Histogram || slices.Equal(g.hist.Buckets, buckets)) {
				f = g
			}
		}
		if f == nil {
			r.Skipped = append(r.Skipped, name)
		} else if len(f.series) > 0 {
			return r, fmt.Errorf("series: %s has series already", name)
		}
		values := make([]string, len(labels))
		for range n {
			for i := range values {
				values[i] = d.string()
			}
			created := d.Varint()
			var se *Series
			if f != nil {
				f.key = f.key[:0]
				for _, v := range values {
					f.key = append(append(f.key, v...), 0xff)
				}
				se = f.create(values, created)
			}
			if kind == Counter {
				v := d.Float64()
				if se != nil {
					se.v = v
				}
				continue
			}
			h := newHistogram(len(buckets), 0)
			for i := range h.counts {
				h.counts[i] = d.Uvarint()
			}
			h.sum, h.count, h.schema, h.zero = d.Float64(), d.Uvarint(), int32(d.Varint()), d.Uvarint()
			h.pos, h.neg = d.window(), d.window()
			if se != nil {
				if f.schema == math.MinInt32 || h.schema == math.MinInt32 {
					// Native buckets turned off or on since: start them afresh.
					h.schema, h.zero, h.pos, h.neg = f.schema, 0, window{}, window{}
				}
				h.populated = populated(h.pos) + populated(h.neg)
				se.h = h
			}
		}
		if f != nil {
			f.released = int(min(released, uint64(n)))
			r.Series += n
		}
		if d.Err != nil {
			break
		}
	}
	if d.Err != nil {
		return r, fmt.Errorf("series: truncated or corrupt snapshot: %w", d.Err)
	}
	return r, nil
}

func populated(w window) int {
	n := 0
	for _, c := range w.counts {
		if c > 0 {
			n++
		}
	}
	return n
}

// decoder reads a snapshot: wire's reads, and the string table.
type decoder struct {
	wire.Reader
	strings []string
}

var errShort = errors.New("unexpected end")

func (d *decoder) string() string {
	ref := d.Uvarint()
	if ref > 0 {
		if ref > uint64(len(d.strings)) {
			d.Fail(errors.New("bad string reference"))
			return ""
		}
		return d.strings[ref-1]
	}
	s := d.Str()
	if d.Err == nil {
		d.strings = append(d.strings, s)
	}
	return s
}

func (d *decoder) window() window {
	w := window{first: int(d.Varint())}
	n := d.Count(1) // each count takes a byte at least
	if n > 0 {
		w.counts = make([]uint64, n)
		for i := range w.counts {
			w.counts[i] = d.Uvarint()
		}
	}
	return w
}
