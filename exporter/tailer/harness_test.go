package tailer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector plays the ingest loop: it records every line once, and the
// position of every batch it has processed, as a checkpoint would.
type collector struct {
	mu        sync.Mutex
	lines     map[string]int
	order     []string
	positions map[FileID]Position
	dropped   int
	retired   int
}

func newCollector() *collector {
	return &collector{lines: map[string]int{}, positions: map[FileID]Position{}}
}

// add records a batch, as the ingest loop processes one.
func (c *collector) add(t *Tailer, b *Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range bytes.SplitAfter(b.Data, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		s := strings.TrimSuffix(string(l), "\n")
		c.lines[s]++
		c.order = append(c.order, s)
	}
	c.dropped += b.Dropped
	if b.Retire {
		c.retired++
		delete(c.positions, b.Pos.FileID)
	} else {
		c.positions[b.Pos.FileID] = b.Pos
	}
	t.Release(b)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}

func (c *collector) snapshot() []Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Position, 0, len(c.positions))
	for _, p := range c.positions {
		out = append(out, p)
	}
	return out
}

// exactlyOnce checks that lines 0..n-1 of every prefix were each seen once.
func (c *collector) exactlyOnce(t *testing.T, prefix string, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing, dup []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("%s-%06d", prefix, i)
		switch c.lines[k] {
		case 1:
		case 0:
			missing = append(missing, k)
		default:
			dup = append(dup, k)
		}
	}
	if len(missing)+len(dup) > 0 {
		sort.Strings(missing)
		t.Fatalf("%s: %d missing (first %v), %d duplicated (first %v)", prefix, len(missing), head(missing), len(dup), head(dup))
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

func testConfig() Config {
	c := DefaultConfig()
	c.PollInterval = 10 * time.Millisecond
	c.GlobInterval = 20 * time.Millisecond
	c.RotateWait = 100 * time.Millisecond
	return c
}

// fakeClock is the tailer's time, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness runs a tailer on test wakers and a fake clock, and consumes its
// batches into a collector in the test's own goroutine: after cycle, every
// line written before it has been read and recorded, and nothing else.
type harness struct {
	t        *testing.T
	tl       *Tailer
	poll     *TestWaker
	discover *TestWaker
	clock    *fakeClock
	c        *collector
	cancel   context.CancelFunc
	done     chan struct{}
}

func newHarness(t *testing.T, cfg Config, sources []string, known []Position) *harness {
	t.Helper()
	tl, err := New(cfg, sources, known, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, tl: tl, poll: NewTestWaker(), discover: NewTestWaker(),
		clock: &fakeClock{now: time.Date(2025, 10, 24, 12, 0, 0, 0, time.UTC)}, c: newCollector(), done: make(chan struct{})}
	tl.UseClock(Clock{Poll: h.poll, Discover: h.discover, Now: h.clock.Now})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); tl.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

// await consumes batches until ch is closed.
func (h *harness) await(what string, ch <-chan struct{}) {
	h.t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case b, ok := <-h.tl.Batches():
			if !ok {
				h.t.Fatalf("tailer stopped while waiting for %s", what)
			}
			h.c.add(h.tl, b)
		case <-ch:
			return
		case <-timeout.C:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// cycle runs discovery once, then wakes the readers, and returns when
// readers of them wait again, with every batch they sent recorded.
func (h *harness) cycle(readers int) {
	h.t.Helper()
	h.discover.WakeAll()
	h.await("discovery", h.discover.Waiting(1))
	h.poll.WakeAll()
	h.await(fmt.Sprintf("%d readers", readers), h.poll.Waiting(readers))
	// Readers that finished their file sent its last batch before leaving.
	for {
		left := h.tl.exits.Wake()
		if h.tl.readerCount() == readers {
			break
		}
		h.await("readers to leave", left)
	}
	for {
		select {
		case b := <-h.tl.Batches():
			h.c.add(h.tl, b)
		default:
			return
		}
	}
}

// consumeUntil records batches until cond holds.
func (h *harness) consumeUntil(what string, cond func(*collector) bool) {
	h.t.Helper()
	timeout := time.After(20 * time.Second)
	for !cond(h.c) {
		select {
		case b := <-h.tl.Batches():
			h.c.add(h.tl, b)
		case <-timeout:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// stop ends the tailer; batches not consumed yet are not recorded, as a
// consumer that stops mid-stream does not process them.
func (h *harness) stop() {
	h.cancel()
	for b := range h.tl.Batches() {
		h.tl.Release(b)
	}
	<-h.done
}

type writer struct {
	t      *testing.T
	path   string
	f      *os.File
	prefix string
	n      int
}

func newWriter(t *testing.T, path, prefix string) *writer {
	w := &writer{t: t, path: path, prefix: prefix}
	w.reopen()
	return w
}

func (w *writer) reopen() {
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	w.f = f
}

func (w *writer) write(n int) {
	var buf bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&buf, "%s-%06d\n", w.prefix, w.n)
		w.n++
	}
	if _, err := w.f.Write(buf.Bytes()); err != nil {
		w.t.Fatal(err)
	}
}
