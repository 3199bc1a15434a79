package quota

import (
	"context"
	"encoding/json"
	"time"
)

// Store is the usage ledger and the protocol that keeps it exact.
//
// The ingest goroutine alone calls Add, Retain and Checkpoint. Whoever
// writes the state file calls Saved with a checkpoint once it is durable:
// only then do its counts become visible to Usage and, for a shared ledger,
// go to Redis, so that no reader sees a count that a crash could take back
// and Redis never holds a batch the state file does not know. Usage and
// Held are safe for concurrent use.
type Store interface {
	// Add counts calls and tokens of user in the billing period with ID period.
	Add(period, user string, calls, tokens int64)
	// Retain forgets the periods before keepFrom that the store holds for itself.
	Retain(keepFrom string)
	// Checkpoint captures the ledger for the state file; its Saved part
	// refers to live data, to be encoded before the next Add. resume is the
	// caller's own state at this point (read positions): a shared ledger
	// commits it with the batch, to resume from should the state file be
	// older than Redis.
	Checkpoint(resume []byte) *Checkpoint
	// Saved reports that cp is durable in the state file.
	Saved(cp *Checkpoint)
	// Usage returns a period's usage by user as of the last saved
	// checkpoint (and, shared, what other exporters committed).
	Usage(ctx context.Context, period string) map[string]Usage
	// Held is the number of (period, user) entries held in memory and in the
	// state file: every entry embedded, those not yet committed with Redis.
	Held() int
	// Full reports that so many entries wait for Redis that reading more
	// logs must pause (nothing is dropped: the lines wait in the files).
	Full() bool
	// Drain waits at most timeout for what was saved to reach its final
	// place, and reports whether it did.
	Drain(timeout time.Duration) bool
	// Waiting reports that a checkpoint would move counts on even if no
	// line came: a shared ledger's counts wait to be cut into the next
	// batch once the one in flight is committed.
	Waiting() bool
}

// Checkpoint is the ledger as of one point of the ingest stream: the part
// the state file keeps, and the view readers get once it is saved.
type Checkpoint struct {
	Saved
	view any
}

// Saved is what the state file holds of the ledger. Its JSON keys are those
// state files had before the Store, so that upgrades keep their ledger.
type Saved struct {
	// Ledger holds every count of the periods kept (embedded), or the
	// counts not yet cut into a batch (shared).
	Ledger *Ledger `json:"ledger,omitempty"`
	// Redis is how far this exporter's commits to Redis have gone.
	Redis *Progress `json:"redis,omitempty"`
}

// Rekey renames the users of everything saved (when the state file's user
// ids were kept raw and are now to be hashed).
func (s *Saved) Rekey(f func(user string) string) {
	if s.Ledger != nil {
		s.Ledger.Rekey(f)
	}
	if s.Redis != nil && s.Redis.Inflight != nil && s.Redis.Inflight.Counts != nil {
		s.Redis.Inflight.Counts.Rekey(f)
	}
}

// Progress is where an exporter is in its sequence of commits to Redis.
type Progress struct {
	Committed uint64 `json:"committed"`
	Inflight  *Batch `json:"inflight,omitempty"`
}

// Batch is a numbered batch of ledger increments on its way to Redis, with
// the state (read positions) of the lines it came from.
type Batch struct {
	Seq    uint64          `json:"seq"`
	Counts *Ledger         `json:"batch"`
	State  json.RawMessage `json:"state"`
}
