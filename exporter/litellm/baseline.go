package litellm

import (
	"math"
	"sort"
	"time"
)

// A LiteLLM deployment answers one URL with several processes (replicas
// behind a Service, workers without a shared multiprocess directory), and
// each keeps its own counters. Increments are therefore taken per process,
// identified by its start time, and per series, identified by the hash of
// all its labels: a series LiteLLM removes (its end_user series expire after
// an hour idle) and recreates starts again from zero without anything being
// undone, which a sum over series could not tell from a reset.

// baseline is where one process's counted series stood when last applied.
type baseline struct {
	start float64
	seen  time.Time
	ids   []uint64  // in the order of the last scrape
	vals  []float64 // ids' values
	index map[uint64]int32
}

func (b *baseline) lookup(id uint64) (float64, bool) {
	if i, ok := b.index[id]; ok {
		return b.vals[i], true
	}
	return 0, false
}

func (b *baseline) rebuildIndex() {
	b.index = make(map[uint64]int32, len(b.ids))
	for i, id := range b.ids {
		b.index[id] = int32(i)
	}
}

// processKey identifies a process: its start time, or, when LiteLLM reports
// none, the endpoint that answered.
type processKey struct {
	start    float64
	endpoint string
}

// Processes holds a baseline for every LiteLLM process seen, by target.
// Not safe for concurrent use.
type Processes struct {
	targets map[string]map[processKey]*baseline
	// Retention is how long the baseline of a process not seen is kept.
	Retention time.Duration
	// rebaseline makes the first scrape of a target a baseline only: the
	// state came from a version that kept no per-series values.
	rebaseline bool
}

// NewProcesses returns an empty set that forgets a process after retention.
func NewProcesses(retention time.Duration) *Processes {
	return &Processes{targets: map[string]map[processKey]*baseline{}, Retention: retention}
}

// Rebaseline makes each target's next scrape a baseline that counts
// nothing (after an upgrade from a state without per-series values).
func (p *Processes) Rebaseline() { p.rebaseline = true }

// Applied is what one scrape adds.
type Applied struct {
	Usage Usage
	// First is true when the target had no process before: the increments
	// are everything LiteLLM counted since it started.
	First bool
	// NewProcess is true when a target that had a process shows another:
	// LiteLLM restarted, or another replica answered.
	NewProcess bool
	// Resets counts series that went down in the same process: each counts
	// again from zero.
	Resets int
	// Changed is false when the baselines are as before the scrape (the
	// same series and values): there is nothing new to checkpoint.
	Changed bool
}

// dropTolerance absorbs the rounding of a counter summed over worker files
// in a different order: a fall this small is no reset.
const dropTolerance = 1e-9

// Apply takes the increments of a scrape of target, answered at endpoint,
// over the baseline of the process that answered, and keeps the scrape as
// that process's new baseline. A series absent from the scrape is dropped
// from the baseline: LiteLLM removed it, and it starts from zero if it
// comes back.
func (p *Processes) Apply(target, endpoint string, snap *Snapshot, now time.Time) Applied {
	procs := p.targets[target]
	if procs == nil {
		procs = map[processKey]*baseline{}
		p.targets[target] = procs
	}
	key := processKey{start: snap.StartTime}
	if snap.StartTime == 0 {
		key.endpoint = endpoint
	}
	prev := procs[key]
	a := Applied{First: len(procs) == 0 && !p.rebaseline, NewProcess: prev == nil && len(procs) > 0,
		Usage: Usage{amounts: map[usageKey]float64{}, pairs: snap.pairs}}
	countNothing := prev == nil && len(procs) == 0 && p.rebaseline
	next := &baseline{start: snap.StartTime, seen: now, ids: make([]uint64, 0, len(snap.Series)),
		vals: make([]float64, 0, len(snap.Series)), index: make(map[uint64]int32, len(snap.Series))}
	for _, x := range snap.Series {
		if i, dup := next.index[x.ID]; dup {
			next.vals[i] += x.Value // one series twice (or a hash collision): one sum
		} else {
			next.index[x.ID] = int32(len(next.ids))
			next.ids = append(next.ids, x.ID)
			next.vals = append(next.vals, x.Value)
		}
	}
	a.Changed = prev == nil || len(prev.ids) != len(next.ids)
	if !countNothing {
		for _, x := range snap.Series {
			inc := x.Value
			if prev != nil {
				before, seen := prev.lookup(x.ID)
				a.Changed = a.Changed || !seen || before != x.Value
				if seen {
					switch {
					case x.Value >= before:
						inc = x.Value - before
					case before-x.Value <= dropTolerance*before:
						inc = 0
					default:
						a.Resets++ // a reset: the value is all new
					}
				}
			}
			if inc > 0 && !math.IsInf(inc, 0) {
				a.Usage.amounts[usageKey{kind: x.Kind, labels: snap.labels[x.labels]}] += inc
			}
		}
	}
	procs[key] = next
	p.rebaseline = false
	if p.forget(now) {
		a.Changed = true
	}
	return a
}

// forget drops the baselines of processes not seen within the retention,
// and reports whether it dropped any.
func (p *Processes) forget(now time.Time) bool {
	if p.Retention <= 0 {
		return false
	}
	dropped := false
	for t, procs := range p.targets {
		for k, b := range procs {
			if now.Sub(b.seen) > p.Retention {
				delete(procs, k)
				dropped = true
			}
		}
		if len(procs) == 0 {
			delete(p.targets, t)
		}
	}
	return dropped
}

// Count is the number of process baselines held.
func (p *Processes) Count() int {
	n := 0
	for _, procs := range p.targets {
		n += len(procs)
	}
	return n
}

// sortedKeys gives a target's processes in a stable order.
func sortedKeys(procs map[processKey]*baseline) []processKey {
	keys := make([]processKey, 0, len(procs))
	for k := range procs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].start != keys[j].start {
			return keys[i].start < keys[j].start
		}
		return keys[i].endpoint < keys[j].endpoint
	})
	return keys
}
