// Package series keeps the counters and histograms the exporter derives
// from log lines, outside client_golang, for three reasons:
//
//   - exactly once into Prometheus: the values are part of the checkpoint
//     (Encode, Restore), so a restarted exporter continues its counters
//     instead of starting them at zero, and readers see only values that a
//     checkpoint holds (Snapshot, Publish): what a crash takes back was
//     never scraped;
//   - no lost first increments: a series is published at zero until a
//     scrape has seen it there, so that increase() counts everything from
//     its first increment, also on Prometheus versions that ignore created
//     timestamps (which are exposed too, in protobuf);
//   - cheap scrapes: one goroutine updates plain fields, and the text
//     formats are written from each series' label text, rendered once.
//
// A Set is updated by one goroutine (the ingest loop). Snapshots are taken
// by that goroutine and published by any; published snapshots are
// immutable and read concurrently.
package series

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a family's metric type.
type Kind uint8

// The kinds a Set keeps.
const (
	Counter Kind = iota
	Histogram
)

// HistogramOpts are a histogram family's buckets.
type HistogramOpts struct {
	// Buckets are the classic upper bounds, ascending; +Inf is implied.
	Buckets []float64
	// NativeFactor > 1 adds native (exponential) buckets growing by at most
	// this factor, as client_golang's NativeHistogramBucketFactor.
	NativeFactor float64
	// NativeMaxBuckets bounds the populated native buckets per series; beyond
	// it the resolution halves. 0 for no bound.
	NativeMaxBuckets int
}

// Set is a group of families, their series and their published values.
type Set struct {
	mu       sync.Mutex // guards families for Describe and Restore
	families []*Family  // sorted by name
	now      func() time.Time
	// hold is how long a new series stays at zero at least (besides being
	// scraped there once).
	hold      time.Duration
	published atomic.Pointer[Snapshot]
	// served is the newest published snapshot a scrape has rendered: the
	// series it showed at zero can be released. Kept apart from published,
	// which checkpoints may replace faster than scrapes come.
	served atomic.Pointer[Snapshot]
	seq    uint64 // numbers snapshots, in the order taken
	// encoded is the size and string count of the last Encode, to size the next.
	encoded [2]int
}

// NewSet returns an empty set; now stamps new series' creation.
func NewSet(now func() time.Time) *Set {
	if now == nil {
		now = time.Now
	}
	return &Set{now: now}
}

// SetHold sets how long a new series is shown at zero at least, for
// several Prometheus servers scraping one exporter: each must see the zero.
func (s *Set) SetHold(d time.Duration) { s.hold = d }

// Family is a metric family of one kind and label names.
type Family struct {
	set    *Set
	name   string
	help   string
	kind   Kind
	labels []string
	hist   HistogramOpts
	schema int32 // native schema; math.MinInt32 without native buckets

	order  []int              // label indexes sorted by name: the formats sort label pairs
	index  map[string]*Series // by label values joined with \xff
	series []*Series          // in creation order
	// released is the number of series, from the first, whose values are
	// published; the others are published at zero.
	released int
	key      []byte // scratch for index keys
	seq      uint64 // numbers series in creation order
}

func (s *Set) add(f *Family) *Family {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.families {
		if g.name == f.name {
			panic(fmt.Sprintf("series: family %s registered twice", f.name))
		}
	}
	f.set, f.index = s, map[string]*Series{}
	f.order = make([]int, len(f.labels))
	for i := range f.order {
		f.order[i] = i
	}
	slices.SortFunc(f.order, func(a, b int) int { return strings.Compare(f.labels[a], f.labels[b]) })
	s.families = append(s.families, f)
	slices.SortFunc(s.families, func(a, b *Family) int { return strings.Compare(a.name, b.name) })
	return f
}

// NewCounter adds a counter family; its name should end in _total.
func (s *Set) NewCounter(name, help string, labels ...string) *Family {
	return s.add(&Family{name: name, help: help, kind: Counter, labels: labels, schema: math.MinInt32})
}

// NewHistogram adds a histogram family.
func (s *Set) NewHistogram(name, help string, opts HistogramOpts, labels ...string) *Family {
	f := &Family{name: name, help: help, kind: Histogram, labels: labels, hist: opts, schema: math.MinInt32}
	if opts.NativeFactor > 1 {
		f.schema = pickSchema(opts.NativeFactor)
	}
	return s.add(f)
}

// Name is the family's name.
func (f *Family) Name() string { return f.name }

// Len is the number of series of the family.
func (f *Family) Len() int { return len(f.series) }

// With returns the series of the label values, creating it at zero. Only
// the updating goroutine may call it.
func (f *Family) With(values ...string) *Series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("series: %s has %d labels, got %d values", f.name, len(f.labels), len(values)))
	}
	f.key = f.key[:0]
	for _, v := range values {
		f.key = append(append(f.key, v...), 0xff)
	}
	if s, ok := f.index[string(f.key)]; ok {
		return s
	}
	return f.create(values, f.set.now().UnixMilli())
}

func (f *Family) create(values []string, created int64) *Series {
	f.seq++
	s := &Series{fam: f, values: slices.Clone(values), created: created, seq: f.seq}
	s.labelText = labelText(f.labels, s.values, f.order)
	if f.kind == Histogram {
		s.h = newHistogram(len(f.hist.Buckets), f.schema)
	}
	f.index[string(f.key)] = s
	f.series = append(f.series, s)
	return s
}

// Drop removes the series whose label value match accepts (a user who
// lost their label). They leave the next snapshot, and so the exposition;
// a later With of the same labels starts a new series at zero. Only the
// updating goroutine may call it. It returns how many went.
func (f *Family) Drop(label string, match func(value string) bool) int {
	at := slices.Index(f.labels, label)
	if at < 0 {
		return 0
	}
	// A new slice: published snapshots share the old one.
	kept := make([]*Series, 0, len(f.series))
	released := f.released
	for i, s := range f.series {
		if !match(s.values[at]) {
			kept = append(kept, s)
			continue
		}
		if i < f.released {
			released--
		}
		f.key = f.key[:0]
		for _, v := range s.values {
			f.key = append(append(f.key, v...), 0xff)
		}
		delete(f.index, string(f.key))
	}
	n := len(f.series) - len(kept)
	f.series, f.released = kept, released
	return n
}

// Series is one label set of a family.
type Series struct {
	fam       *Family
	values    []string
	created   int64  // unix milliseconds
	labelText string // `a="x",b="y"`, escaped, without braces
	seq       uint64 // creation order within the family
	v         float64
	h         *histogram
}

// Add adds v (>= 0) to a counter.
func (s *Series) Add(v float64) { s.v += v }

// Inc adds one to a counter.
func (s *Series) Inc() { s.v++ }

// Value is a counter's current value (the updating goroutine's view).
func (s *Series) Value() float64 { return s.v }

// Observe records v in a histogram.
func (s *Series) Observe(v float64) {
	f := s.fam
	h := s.h
	i, _ := slices.BinarySearch(f.hist.Buckets, v)
	h.counts[i]++
	h.sum += v
	h.count++
	if f.schema != math.MinInt32 && !math.IsNaN(v) {
		h.observeNative(v, f.hist.NativeMaxBuckets)
	}
}

// labelText renders label pairs as the text formats write them, sorted by
// name (order lists the label indexes in that order).
func labelText(names, values []string, order []int) string {
	var b strings.Builder
	for k, i := range order {
		if k > 0 {
			b.WriteByte(',')
		}
		b.WriteString(names[i])
		b.WriteString(`="`)
		escapeLabel(&b, values[i])
		b.WriteByte('"')
	}
	return b.String()
}

// escapeLabel escapes a label value as the text formats do: \ " and newline.
func escapeLabel(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}
