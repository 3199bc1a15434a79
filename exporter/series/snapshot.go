package series

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"
)

// Snapshot is a Set's values at one point of the update stream. Taken by
// the updating goroutine, it is immutable: it can be encoded into a
// checkpoint and, once that is durable, published to readers.
type Snapshot struct {
	set       *Set
	seq       uint64
	fams      []famSnapshot
	taken     time.Time
	published time.Time
	served    atomic.Bool // a scrape rendered it
}

type famSnapshot struct {
	f        *Family
	series   []*Series // the family's series when taken
	released int       // series[:released] show their values, the others zero
	values   []float64 // counters
	hists    []histSnapshot
}

type histSnapshot struct {
	counts   []uint64 // classic, not cumulative, +Inf last
	sum      float64
	count    uint64
	schema   int32
	zero     uint64
	pos, neg window
}

// Snapshot copies the values of every series. A series is shown at zero
// until a scrape has rendered a published snapshot that had it, and the
// set's hold has passed since that snapshot was published; from then on it
// is released (shown with its value). Only the updating goroutine may call
// it.
func (s *Set) Snapshot() *Snapshot {
	s.mu.Lock()
	fams := slices.Clone(s.families)
	s.mu.Unlock()
	now := s.now()
	seen := s.served.Load()
	if seen != nil && now.Sub(seen.published) < s.hold {
		seen = nil
	}
	s.seq++
	snap := &Snapshot{set: s, seq: s.seq, taken: now, fams: make([]famSnapshot, len(fams))}
	for i, f := range fams {
		if seen != nil {
			f.released = max(f.released, seen.shown(f))
		}
		fs := famSnapshot{f: f, series: f.series[:len(f.series):len(f.series)], released: f.released}
		switch f.kind {
		case Counter:
			fs.values = make([]float64, len(f.series))
			for j, se := range f.series {
				fs.values[j] = se.v
			}
		case Histogram:
			fs.hists = make([]histSnapshot, len(f.series))
			for j, se := range f.series {
				fs.hists[j] = se.h.snapshot()
			}
		}
		snap.fams[i] = fs
	}
	return snap
}

// Releasable reports whether a Snapshot taken now would release series
// shown at zero (a scrape has seen them, and the hold has passed): while
// nothing else changes, that alone is worth a new snapshot. Only the
// updating goroutine may call it.
func (s *Set) Releasable() bool {
	seen := s.served.Load()
	if seen == nil || s.now().Sub(seen.published) < s.hold {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.families {
		if f.released >= len(f.series) {
			continue
		}
		if seen.shown(f) > f.released {
			return true
		}
	}
	return false
}

func (h *histogram) snapshot() histSnapshot {
	return histSnapshot{counts: slices.Clone(h.counts), sum: h.sum, count: h.count, schema: h.schema, zero: h.zero,
		pos: window{first: h.pos.first, counts: slices.Clone(h.pos.counts)},
		neg: window{first: h.neg.first, counts: slices.Clone(h.neg.counts)}}
}

// Len is the number of series the snapshot holds.
func (snap *Snapshot) Len() int {
	n := 0
	for i := range snap.fams {
		n += len(snap.fams[i].series)
	}
	return n
}

// shown is how many of f's series, from the first, the snapshot had: a
// prefix (series are appended, and Drop keeps the order).
func (snap *Snapshot) shown(f *Family) int {
	fs := snap.family(f)
	if fs == nil || len(fs.series) == 0 {
		return 0
	}
	last := fs.series[len(fs.series)-1].seq
	n, _ := slices.BinarySearchFunc(f.series, last+1, func(s *Series, seq uint64) int { return cmp.Compare(s.seq, seq) })
	return n
}

func (snap *Snapshot) family(f *Family) *famSnapshot {
	for i := range snap.fams {
		if snap.fams[i].f == f {
			return &snap.fams[i]
		}
	}
	return nil
}

// Publish makes snap what readers see.
func (s *Set) Publish(snap *Snapshot) {
	snap.published = s.now()
	s.published.Store(snap)
}

// Published is what readers see: the last published snapshot, or nil.
func (s *Set) Published() *Snapshot { return s.published.Load() }

// Served marks the snapshot as seen by a scrape; the set releases the
// series it showed at zero at its next Snapshot. A scrape of an older
// snapshot that ends after a newer one's does not move this back.
func (snap *Snapshot) Served() {
	snap.served.Store(true)
	if snap.set == nil {
		return
	}
	for {
		cur := snap.set.served.Load()
		if cur != nil && cur.seq >= snap.seq {
			return
		}
		if snap.set.served.CompareAndSwap(cur, snap) {
			return
		}
	}
}

// Value is the published value of a counter series by its label values;
// false when the snapshot does not hold it (tests and the optimizer's
// exporter source read through this).
func (snap *Snapshot) Value(f *Family, values ...string) (float64, bool) {
	fs := snap.family(f)
	if fs == nil || f.kind != Counter {
		return 0, false
	}
	for i, se := range fs.series {
		if slices.Equal(se.values, values) {
			if i >= fs.released {
				return 0, true
			}
			return fs.values[i], true
		}
	}
	return 0, false
}
