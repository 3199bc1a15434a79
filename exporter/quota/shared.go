package quota

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Shared keeps the ledger in Redis, where every exporter that points at it
// adds its counts. The protocol that makes it exact:
//
//   - counts since the last checkpoint are cut into a numbered batch, one at
//     a time, and the batch is written to the state file before it is sent;
//   - Redis applies a batch and stores the exporter's sequence number in one
//     MULTI/EXEC, and applies each number once, so a batch whose reply was
//     lost is sent again safely, and a gap (Redis restarted without its
//     data) is detected;
//   - at start the state file and Redis are reconciled by sequence number.
type Shared struct {
	redis      *Redis
	instance   string
	maxPending int
	log        *slog.Logger
	metrics    SharedMetrics
	retry      time.Duration
	now        func() time.Time

	pending  *Ledger // the ingest goroutine's: counts not yet cut
	lastCut  json.RawMessage
	uncut    bool // a checkpoint found something to cut while a batch was in flight
	held     atomic.Int64
	jobs     chan *Batch
	mu       sync.Mutex
	progress Progress
	sent     bool          // the inflight batch was handed to the committer
	acked    chan struct{} // closed and replaced at every acknowledgement

	published atomic.Pointer[sharedView]
	cacheMu   sync.Mutex
	cache     map[string]redisRead
}

// SharedMetrics are the series a shared ledger updates.
type SharedMetrics struct {
	Up      prometheus.Gauge   // 1 while Redis takes commits
	Commits prometheus.Counter // batches applied
}

// sharedView is what this exporter counted that Redis may not have yet.
type sharedView struct {
	batches []localBatch
}

// localBatch is a batch by the sequence number it has, or will have.
type localBatch struct {
	seq    uint64
	counts *Ledger
}

// redisRead is one read of a period from Redis.
type redisRead struct {
	at    time.Time
	usage map[string]Usage
	seq   uint64 // this instance's last batch in usage
}

// redisReadTTL bounds how often one exporter reads a period from Redis.
const redisReadTTL = 2 * time.Second

// OpenShared restores the shared ledger's side of a state file (nil for
// none) and reconciles it with what Redis holds of instance. When Redis has
// batches the state file does not know (the file is older than the last
// commits), everything up to Redis' checkpoint is in the ledger: resume is
// the state committed with it, to read on from.
func OpenShared(ctx context.Context, r *Redis, instance string, saved *Saved, maxPending int, m SharedMetrics,
	log *slog.Logger) (s *Shared, resume json.RawMessage) {
	s = &Shared{redis: r, instance: instance, maxPending: maxPending, log: log, metrics: m, retry: time.Second,
		now: time.Now, pending: NewLedger(), jobs: make(chan *Batch, 1), acked: make(chan struct{}),
		cache: map[string]redisRead{}}
	if saved != nil {
		if saved.Ledger != nil {
			s.pending = saved.Ledger
		}
		if saved.Redis != nil {
			s.progress = *saved.Redis
		}
	}
	if err := r.Ping(ctx); err != nil {
		m.Up.Set(0)
		log.Warn("Redis unreachable at start; the ledger keeps its counts until it returns", "err", err)
	} else {
		m.Up.Set(1)
		resume = s.reconcile(ctx)
	}
	s.held.Store(int64(s.pending.Len()))
	s.uncut = !s.pending.Empty() // counts held from the last run: cut them at the first checkpoint
	s.published.Store(s.view())
	return s, resume
}

// reconcile picks up where the last run left off; the newer of the state
// file and Redis wins (see OpenShared).
func (s *Shared) reconcile(ctx context.Context) json.RawMessage {
	seq, state, err := s.redis.Checkpoint(ctx, s.instance)
	if err != nil {
		return nil // the committer sorts it out when Redis answers
	}
	p := &s.progress
	switch {
	case p.Inflight != nil && seq == p.Inflight.Seq:
		p.Committed, p.Inflight = seq, nil
	case seq == p.Committed:
		// In step: what the file holds is not in Redis yet.
	case seq > p.Committed:
		s.log.Info("resuming from the Redis checkpoint, newer than the state file", "batch", seq)
		s.progress, s.pending = Progress{Committed: seq}, NewLedger()
		return state
	default:
		s.log.Error("Redis has fewer ledger batches of this exporter than it committed (restarted without persistence?)",
			"redis", seq, "committed", p.Committed)
		p.Committed = seq
		if p.Inflight != nil {
			p.Inflight.Seq = seq + 1
		}
	}
	return nil
}

// Start runs the committer until ctx ends. A batch saved before the last
// stop and never acknowledged is sent again at once: Redis applies a
// sequence number once.
func (s *Shared) Start(ctx context.Context) {
	s.mu.Lock()
	if b := s.progress.Inflight; b != nil {
		s.sent = true
		s.jobs <- b
	}
	s.mu.Unlock()
	go s.commitLoop(ctx)
}

// Add implements Store.
func (s *Shared) Add(period, user string, calls, tokens int64) {
	s.pending.Add(period, user, calls, tokens)
}

// Retain implements Store: Redis keeps past periods itself, for a year.
func (s *Shared) Retain(string) {}

// Checkpoint implements Store. The counts so far become the next batch
// unless one is still in flight; the state file then holds the batch (to
// send again after a crash) and the counts not cut yet.
func (s *Shared) Checkpoint(resume []byte) *Checkpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	news := !s.pending.Empty() || string(resume) != string(s.lastCut)
	switch {
	case s.progress.Inflight == nil && news:
		s.progress.Inflight = &Batch{Seq: s.progress.Committed + 1, Counts: s.pending, State: resume}
		s.pending, s.sent, s.lastCut, s.uncut = NewLedger(), false, resume, false
	case news:
		s.uncut = true
	}
	progress := s.progress
	if b := progress.Inflight; b != nil {
		cp := *b // the committer may renumber b
		progress.Inflight = &cp
	}
	s.held.Store(int64(s.pending.Len() + s.inflightLen()))
	return &Checkpoint{Saved: Saved{Ledger: s.pending, Redis: &progress}, view: s.view()}
}

func (s *Shared) inflightLen() int {
	if s.progress.Inflight == nil {
		return 0
	}
	return s.progress.Inflight.Counts.Len()
}

// view lists the batches Redis may lack: the one in flight, and the counts
// not cut yet under the number they will have. s.mu is held, or s is not
// shared yet.
func (s *Shared) view() *sharedView {
	v := &sharedView{}
	next := s.progress.Committed + 1
	if b := s.progress.Inflight; b != nil {
		v.batches = append(v.batches, localBatch{seq: b.Seq, counts: b.Counts})
		next = b.Seq + 1
	}
	if !s.pending.Empty() {
		v.batches = append(v.batches, localBatch{seq: next, counts: s.pending.Clone()})
	}
	return v
}

// Saved implements Store: the counts become visible, and the batch in
// flight, now in the state file, goes to Redis.
func (s *Shared) Saved(cp *Checkpoint) {
	if v, ok := cp.view.(*sharedView); ok {
		s.published.Store(v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.progress.Inflight; b != nil && !s.sent && cp.Redis != nil && cp.Redis.Inflight != nil &&
		cp.Redis.Inflight.Counts == b.Counts {
		s.sent = true
		s.jobs <- b // room: one batch is in flight at a time
	}
}

// commitLoop sends batches to Redis in order, retrying each until Redis
// takes it: a batch is never dropped. When ctx ends while Redis is
// unreachable, the batch stays in the state file, to be sent next time.
func (s *Shared) commitLoop(ctx context.Context) {
	up := true
	for {
		var b *Batch
		select {
		case <-ctx.Done():
			return
		case b = <-s.jobs:
		}
		for {
			s.mu.Lock()
			seq := b.Seq
			s.mu.Unlock()
			applied, err := s.redis.Commit(context.WithoutCancel(ctx), s.instance, seq, b.Counts, b.State)
			var gap *GapError
			if errors.As(err, &gap) {
				s.log.Error("Redis lacks earlier ledger batches of this exporter (restarted without persistence?); their counts are lost there",
					"batch", seq, "redis_has", gap.Have)
				s.mu.Lock()
				s.progress.Committed, b.Seq = gap.Have, gap.Have+1
				s.mu.Unlock()
				continue
			}
			if err == nil {
				s.metrics.Up.Set(1)
				if !up {
					s.log.Info("Redis reachable again; held ledger increments committed", "batch", seq)
					up = true
				}
				if applied {
					s.metrics.Commits.Inc()
				}
				s.acknowledge(b)
				break
			}
			s.metrics.Up.Set(0)
			if up {
				s.log.Warn("Redis unreachable; ledger increments are held in memory and in the state file", "err", err)
				up = false
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.retry):
			}
		}
	}
}

func (s *Shared) acknowledge(b *Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progress.Inflight == b {
		s.progress.Committed, s.progress.Inflight = b.Seq, nil
	}
	close(s.acked)
	s.acked = make(chan struct{})
}

// Drain implements Store: it waits for the batch in flight.
func (s *Shared) Drain(timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		done, acked := s.progress.Inflight == nil, s.acked
		s.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-acked:
		case <-deadline.C:
			return false
		}
	}
}

// Held implements Store.
func (s *Shared) Held() int { return int(s.held.Load()) }

// Full implements Store; the ingest goroutine calls it.
func (s *Shared) Full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending.Len()+s.inflightLen() >= s.maxPending
}

// Waiting implements Store: what the last checkpoint could not cut, with
// no batch in flight any more.
func (s *Shared) Waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uncut && s.progress.Inflight == nil
}

// Usage implements Store: Redis' ledger (its last good read while Redis is
// away) plus this exporter's batches that the read does not hold yet. The
// read carries this exporter's last committed number, so a batch is never
// counted twice, not even while its acknowledgement is on its way.
func (s *Shared) Usage(ctx context.Context, period string) map[string]Usage {
	r := s.read(ctx, period)
	out := make(map[string]Usage, len(r.usage))
	maps.Copy(out, r.usage)
	for _, b := range s.published.Load().batches {
		if b.seq <= r.seq {
			continue
		}
		for user, u := range b.counts.Users(period) {
			o := out[user]
			out[user] = Usage{Calls: o.Calls + u.Calls, Tokens: o.Tokens + u.Tokens}
		}
	}
	return out
}

// read returns a recent read of period from Redis, or the last good one.
func (s *Shared) read(ctx context.Context, period string) redisRead {
	s.cacheMu.Lock()
	c, ok := s.cache[period]
	s.cacheMu.Unlock()
	if ok && s.now().Sub(c.at) <= redisReadTTL {
		return c
	}
	usage, seq, err := s.redis.UsageAt(ctx, period, s.instance)
	if err != nil {
		return c
	}
	c = redisRead{at: s.now(), usage: usage, seq: seq}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if len(s.cache) > 16 {
		clear(s.cache)
	}
	s.cache[period] = c
	return c
}
