// Package heavy keeps the heaviest keys of a stream in a bounded set of
// labelled slots: the exporter's users with a label of their own, the rest
// folded into __other__.
//
// Labelled keys are counted exactly from when they got their slot. The
// others are candidates in a Space-Saving summary (Metwally, Agrawal and El
// Abbadi, 2005): a fixed number of counters; a key not in the summary takes
// the counter of the smallest count, which it inherits as its possible
// overestimate (Err). A key whose true count exceeds N/c (N the traffic, c
// the candidates) is always in the summary, with Count-Err <= true <= Count.
//
// Slots are free until the first K keys have them. Then Rebalance hands a
// slot over only when a candidate's guaranteed count (Count-Err) exceeds the
// weakest labelled key's count by a factor and a margin, so that two keys of
// about the same traffic do not take turns. Counts decay (Decay halves
// them, say daily), so the set follows today's heavy keys rather than last
// month's.
package heavy

import (
	"cmp"
	"slices"
)

// Entry is a tracked key.
type Entry[T any] struct {
	Key   string
	Count float64 // traffic (decayed); for candidates, an overestimate
	Err   float64 // candidates: how much Count may overestimate
	Slot  int     // 1..K while labelled, 0 for a candidate
	Value T       // the caller's
	heap  int     // index in the candidates' heap
}

// Labelled reports whether the entry has a slot.
func (e *Entry[T]) Labelled() bool { return e.Slot > 0 }

// Tracker is the labelled set and the candidates' summary. Not safe for
// concurrent use.
type Tracker[T any] struct {
	keys     map[string]*Entry[T]
	slots    []*Entry[T] // by slot-1; nil when free
	free     []int       // free slots, the lowest last
	labelled int
	max      int         // K
	cands    []*Entry[T] // min-heap by Count
	maxCands int
	// OnForget, when set, is called with every entry the tracker drops.
	OnForget func(*Entry[T])
}

// New tracks at most k labelled keys and c candidates.
func New[T any](k, c int) *Tracker[T] {
	t := &Tracker[T]{keys: map[string]*Entry[T]{}, max: k, maxCands: max(c, 1)}
	return t
}

// Max is the number of slots.
func (t *Tracker[T]) Max() int { return t.max }

// Resize changes the number of slots; Rebalance demotes the weakest keys
// beyond it.
func (t *Tracker[T]) Resize(k, c int) {
	t.max, t.maxCands = k, max(c, 1)
	for len(t.cands) > t.maxCands {
		t.evict()
	}
}

// Get returns the entry of key, or nil.
func (t *Tracker[T]) Get(key string) *Entry[T] { return t.keys[key] }

// Len is the number of labelled keys and of candidates.
func (t *Tracker[T]) Len() (labelled, candidates int) { return t.labelled, len(t.cands) }

// Add counts w for key and returns its entry. A new key takes a free slot
// while no candidate waits for one, or else a candidate's counter: the
// smallest, whose key is forgotten.
func (t *Tracker[T]) Add(key string, w float64) *Entry[T] {
	if e := t.keys[key]; e != nil {
		t.Inc(e, w)
		return e
	}
	e := &Entry[T]{Key: key, Count: w}
	if t.labelled < t.max && len(t.cands) == 0 {
		t.label(e)
		t.keys[key] = e
		return e
	}
	if len(t.cands) >= t.maxCands {
		evicted := t.evict()
		e.Count, e.Err = evicted.Count+w, evicted.Count
	}
	t.push(e)
	t.keys[key] = e
	return e
}

// Inc counts w for an entry the tracker holds.
func (t *Tracker[T]) Inc(e *Entry[T], w float64) {
	e.Count += w
	if !e.Labelled() {
		t.down(e.heap)
	}
}

// label gives e a free slot.
func (t *Tracker[T]) label(e *Entry[T]) {
	if n := len(t.free); n > 0 {
		e.Slot = t.free[n-1]
		t.free = t.free[:n-1]
		t.slots[e.Slot-1] = e
	} else {
		t.slots = append(t.slots, e)
		e.Slot = len(t.slots)
	}
	t.labelled++
}

// Slot returns the entry of a slot, or nil.
func (t *Tracker[T]) Slot(slot int) *Entry[T] {
	if slot < 1 || slot > len(t.slots) {
		return nil
	}
	return t.slots[slot-1]
}

// Swap is a slot handed over: Out lost it (now a candidate, or forgotten),
// In has it; either is nil for a free slot.
type Swap[T any] struct {
	Slot    int
	Out, In *Entry[T]
}

// Rebalance hands slots to the candidates that outweigh labelled keys: a
// free slot to the heaviest candidate; a taken one when the candidate's
// guaranteed count exceeds the weakest labelled count times factor plus
// margin. It also frees the slots beyond Max. It returns what changed.
func (t *Tracker[T]) Rebalance(factor, margin float64) []Swap[T] {
	var swaps []Swap[T]
	// Slots beyond the maximum (after Resize) go first, weakest first.
	for t.labelled > t.max {
		w := t.weakest()
		swaps = append(swaps, Swap[T]{Slot: w.Slot, Out: w})
		t.unlabel(w)
	}
	if len(t.cands) == 0 {
		return swaps
	}
	// Candidates that could take a slot, heaviest first.
	floor := 0.0
	if t.labelled >= t.max {
		if t.max == 0 {
			return swaps
		}
		floor = t.weakest().Count*factor + margin
	}
	var up []*Entry[T]
	for _, c := range t.cands {
		if c.Count-c.Err > floor {
			up = append(up, c)
		}
	}
	if len(up) == 0 {
		return swaps
	}
	slices.SortFunc(up, func(a, b *Entry[T]) int {
		return cmp.Or(cmp.Compare(b.Count-b.Err, a.Count-a.Err), cmp.Compare(a.Key, b.Key))
	})
	var down []*Entry[T] // labelled, weakest first
	if t.labelled+len(up) > t.max {
		for _, e := range t.slots {
			if e != nil {
				down = append(down, e)
			}
		}
		slices.SortFunc(down, func(a, b *Entry[T]) int { return cmp.Or(cmp.Compare(a.Count, b.Count), cmp.Compare(a.Key, b.Key)) })
	}
	for _, c := range up {
		t.remove(c)
		if t.labelled < t.max {
			t.label(c)
			swaps = append(swaps, Swap[T]{Slot: c.Slot, In: c})
			continue
		}
		if len(down) == 0 {
			t.push(c)
			break
		}
		w := down[0]
		if !(c.Count-c.Err > w.Count*factor+margin) {
			t.push(c)
			break
		}
		down = down[1:]
		slot := w.Slot
		t.unlabel(w)
		t.label(c) // takes the slot w freed
		swaps = append(swaps, Swap[T]{Slot: slot, Out: w, In: c})
	}
	return swaps
}

// unlabel makes a labelled entry a candidate, evicting the smallest
// candidate when the summary is full (it is forgotten).
func (t *Tracker[T]) unlabel(e *Entry[T]) {
	t.slots[e.Slot-1] = nil
	t.free = append(t.free, e.Slot)
	slices.SortFunc(t.free, func(a, b int) int { return cmp.Compare(b, a) })
	e.Slot = 0
	t.labelled--
	if len(t.cands) >= t.maxCands {
		if t.cands[0].Count >= e.Count {
			t.forget(e)
			return
		}
		t.evict()
	}
	t.push(e)
}

func (t *Tracker[T]) forget(e *Entry[T]) {
	delete(t.keys, e.Key)
	if t.OnForget != nil {
		t.OnForget(e)
	}
}

func (t *Tracker[T]) weakest() *Entry[T] {
	var w *Entry[T]
	for _, e := range t.slots {
		if e != nil && (w == nil || e.Count < w.Count || e.Count == w.Count && e.Key < w.Key) {
			w = e
		}
	}
	return w
}

// Decay multiplies every count by f (0 < f <= 1).
func (t *Tracker[T]) Decay(f float64) {
	for _, e := range t.keys {
		e.Count *= f
		e.Err *= f
	}
}

// EachLabelled calls fn for every labelled entry, by slot.
func (t *Tracker[T]) EachLabelled(fn func(*Entry[T])) {
	for _, e := range t.slots {
		if e != nil {
			fn(e)
		}
	}
}

// Each calls fn for every entry: the labelled by slot, then the candidates.
func (t *Tracker[T]) Each(fn func(*Entry[T])) {
	for _, e := range t.slots {
		if e != nil {
			fn(e)
		}
	}
	for _, e := range t.cands {
		fn(e)
	}
}

// Restore puts back an entry as Each gave it (slot 0 for a candidate).
// Entries beyond the capacity, or with a slot taken, become candidates.
func (t *Tracker[T]) Restore(e *Entry[T]) {
	if _, dup := t.keys[e.Key]; dup {
		return
	}
	if e.Slot > 0 && e.Slot <= t.max {
		for len(t.slots) < e.Slot {
			t.slots = append(t.slots, nil)
			t.free = append(t.free, len(t.slots))
		}
		if t.slots[e.Slot-1] == nil {
			t.free = slices.DeleteFunc(t.free, func(s int) bool { return s == e.Slot })
			t.slots[e.Slot-1] = e
			t.labelled++
			t.keys[e.Key] = e
			return
		}
	}
	e.Slot = 0
	if len(t.cands) >= t.maxCands {
		return
	}
	t.push(e)
	t.keys[e.Key] = e
}

// FinishRestore orders the free slots after Restore calls.
func (t *Tracker[T]) FinishRestore() {
	slices.SortFunc(t.free, func(a, b int) int { return cmp.Compare(b, a) })
}

// The candidates' min-heap.

func (t *Tracker[T]) push(e *Entry[T]) {
	e.heap = len(t.cands)
	t.cands = append(t.cands, e)
	t.up(e.heap)
}

func (t *Tracker[T]) evict() *Entry[T] {
	e := t.cands[0]
	t.remove(e)
	t.forget(e)
	return e
}

// remove takes a candidate out of the heap (it stays in keys).
func (t *Tracker[T]) remove(e *Entry[T]) {
	i, last := e.heap, len(t.cands)-1
	if i != last {
		t.cands[i] = t.cands[last]
		t.cands[i].heap = i
	}
	t.cands[last] = nil
	t.cands = t.cands[:last]
	if i != last {
		t.down(i)
		t.up(i)
	}
	e.heap = -1
}

func (t *Tracker[T]) less(i, j int) bool {
	a, b := t.cands[i], t.cands[j]
	return a.Count < b.Count || a.Count == b.Count && a.Key < b.Key
}

func (t *Tracker[T]) swap(i, j int) {
	t.cands[i], t.cands[j] = t.cands[j], t.cands[i]
	t.cands[i].heap, t.cands[j].heap = i, j
}

func (t *Tracker[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *Tracker[T]) down(i int) {
	n := len(t.cands)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.less(r, l) {
			m = r
		}
		if !t.less(m, i) {
			return
		}
		t.swap(i, m)
		i = m
	}
}
