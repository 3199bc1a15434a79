// Package dedup counts repeated requests: a request whose key was seen
// within a time window before it. Memory is bounded by a fixed number of
// remembered keys; keys are kept as 64-bit hashes.
package dedup

import (
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// Config configures a Window.
type Config struct {
	// Window is how far back a repeat counts.
	Window time.Duration `yaml:"window"`
	// MaxKeys bounds the keys remembered; when full the oldest go first and
	// the effective window shrinks (counted in Evicted).
	MaxKeys int `yaml:"max_keys"`
}

// DefaultConfig remembers up to a million keys for an hour (about 40 MB).
func DefaultConfig() Config {
	return Config{Window: time.Hour, MaxKeys: 1_000_000}
}

// Validate checks the bounds.
func (c Config) Validate() error {
	if c.Window <= 0 {
		return fielderr.New("window", "must be positive, not %s", c.Window)
	}
	if c.MaxKeys < 1 {
		return fielderr.New("max_keys", "must be at least 1, not %d", c.MaxKeys)
	}
	return nil
}

type entry struct {
	hash uint64
	at   int64 // unix nanoseconds of this sighting
}

// Window detects repeats. It is not safe for concurrent use.
type Window struct {
	window int64
	last   map[uint64]int64 // hash -> latest sighting
	ring   []entry          // sightings in arrival order, oldest at head; grows to max
	head   int
	size   int
	max    int
	// Evicted counts keys dropped before their window ended because MaxKeys was reached.
	Evicted uint64
}

// New returns an empty Window.
func New(c Config) *Window {
	return &Window{
		window: int64(c.Window),
		last:   make(map[uint64]int64),
		ring:   make([]entry, min(c.MaxKeys, 1024)),
		max:    c.MaxKeys,
	}
}

// Seen records a request with key in scope (an api_service, say) at time at,
// and reports whether the same key was seen within the window before it.
// Times should be close to non-decreasing; an out-of-order sighting is
// compared with the latest one.
func (w *Window) Seen(scope string, key []byte, at time.Time) bool {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(scope)
	_, _ = d.Write([]byte{0})
	_, _ = d.Write(key)
	return w.seenHash(d.Sum64(), at.UnixNano())
}

func (w *Window) seenHash(h uint64, now int64) bool {
	w.expire(now)
	prev, ok := w.last[h]
	dup := ok && now-prev <= w.window && now >= prev
	if !ok || now > prev {
		w.last[h] = now
	}
	if w.size == len(w.ring) {
		if len(w.ring) < w.max {
			w.grow()
		} else {
			w.pop()
			w.Evicted++
		}
	}
	w.ring[(w.head+w.size)%len(w.ring)] = entry{hash: h, at: now}
	w.size++
	return dup
}

// grow doubles the ring (up to max), keeping arrival order.
func (w *Window) grow() {
	ring := make([]entry, min(2*len(w.ring), w.max))
	for i := 0; i < w.size; i++ {
		ring[i] = w.ring[(w.head+i)%len(w.ring)]
	}
	w.ring, w.head = ring, 0
}

// expire drops sightings older than the window.
func (w *Window) expire(now int64) {
	for w.size > 0 && now-w.ring[w.head].at > w.window {
		w.pop()
	}
}

// pop removes the oldest sighting; its key goes only if not seen since.
func (w *Window) pop() {
	e := w.ring[w.head]
	if w.last[e.hash] == e.at {
		delete(w.last, e.hash)
	}
	w.head = (w.head + 1) % len(w.ring)
	w.size--
}

// Len is the number of sightings remembered.
func (w *Window) Len() int { return w.size }
