package quota

import (
	"context"
	"sync/atomic"
	"time"
)

// Embedded keeps the whole ledger in the exporter's state file: it is as
// durable as the read positions it is saved with, and exact by
// construction.
type Embedded struct {
	ledger *Ledger
	// dirty are the periods changed since the last checkpoint; last is the
	// latest of them, so that a run of lines of one period costs a compare.
	dirty map[string]bool
	last  string
	// published are the periods as of the last saved checkpoint, by ID;
	// they are never written after publication, so readers need no lock.
	published atomic.Pointer[map[string]map[string]Usage]
	views     map[string]map[string]Usage // the ingest goroutine's copy of the next view
	held      atomic.Int64
}

// NewEmbedded restores the ledger of a state file (nil for none).
func NewEmbedded(saved *Saved) *Embedded {
	e := &Embedded{ledger: NewLedger(), dirty: map[string]bool{}, views: map[string]map[string]Usage{}}
	if saved != nil && saved.Ledger != nil {
		e.ledger = saved.Ledger
	}
	for _, p := range e.ledger.Periods() {
		e.dirty[p] = true
	}
	e.publish(e.view())
	return e
}

// Add implements Store.
func (e *Embedded) Add(period, user string, calls, tokens int64) {
	if period != e.last {
		e.dirty[period], e.last = true, period
	}
	e.ledger.Add(period, user, calls, tokens)
}

// Retain implements Store.
func (e *Embedded) Retain(keepFrom string) {
	e.ledger.Prune(keepFrom)
	for p := range e.views {
		if p < keepFrom {
			delete(e.views, p)
		}
	}
}

// Checkpoint implements Store: the state file holds the whole ledger.
func (e *Embedded) Checkpoint([]byte) *Checkpoint {
	e.held.Store(int64(e.ledger.Len()))
	return &Checkpoint{Saved: Saved{Ledger: e.ledger}, view: e.view()}
}

// view copies the periods changed since the last view; the others are
// shared with it.
func (e *Embedded) view() map[string]map[string]Usage {
	for p := range e.dirty {
		e.views[p] = e.ledger.Users(p)
	}
	clear(e.dirty)
	e.last = ""
	v := make(map[string]map[string]Usage, len(e.views))
	for p, users := range e.views {
		v[p] = users
	}
	return v
}

// Saved implements Store.
func (e *Embedded) Saved(cp *Checkpoint) {
	if v, ok := cp.view.(map[string]map[string]Usage); ok {
		e.publish(v)
	}
}

func (e *Embedded) publish(v map[string]map[string]Usage) { e.published.Store(&v) }

// Usage implements Store.
func (e *Embedded) Usage(_ context.Context, period string) map[string]Usage {
	return (*e.published.Load())[period]
}

// Held implements Store.
func (e *Embedded) Held() int { return int(e.held.Load()) }

// Full implements Store: the embedded ledger never waits for anything.
func (e *Embedded) Full() bool { return false }

// Waiting implements Store: the state file is the ledger's final place.
func (e *Embedded) Waiting() bool { return false }

// Drain implements Store: a saved checkpoint is final.
func (e *Embedded) Drain(time.Duration) bool { return true }
