package tailer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

func TestReadsBacklogThenFollows(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "a")
	w.write(1000)
	h := newHarness(t, testConfig(), []string{path}, nil)
	h.cycle(1)
	if n := h.c.count(); n != 1000 {
		t.Fatalf("backlog: %d lines, want 1000", n)
	}
	w.write(10)
	// A partial line is held back until its newline arrives.
	if _, err := w.f.WriteString("a-001010"); err != nil {
		t.Fatal(err)
	}
	h.cycle(1)
	h.cycle(1)
	if n := h.c.count(); n != 1010 {
		t.Fatalf("%d lines after two polls with a partial line, want 1010", n)
	}
	if _, err := w.f.WriteString("\n"); err != nil {
		t.Fatal(err)
	}
	w.n++
	h.cycle(1)
	h.c.exactlyOnce(t, "a", 1011)
	if n := h.c.count(); n != 1011 {
		t.Fatalf("%d lines, want 1011", n)
	}
}

func TestRenameRotationDrainsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "r")
	w.write(100)
	cfg := testConfig()
	h := newHarness(t, cfg, []string{path}, nil)
	h.cycle(1)
	for round := 0; round < 3; round++ {
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, round)); err != nil {
			t.Fatal(err)
		}
		w.write(50) // the writer has not reopened yet: these go to the renamed file
		w.reopen()
		w.write(100)
		// Discovery finds the new file; the old one is read to its end and
		// kept while its writer may still write to it.
		h.cycle(2)
		if n := h.c.count(); n != w.n {
			t.Fatalf("round %d: %d lines, want %d", round, n, w.n)
		}
		// Once idle for rotate_wait and out of discovery's sight, it goes.
		h.clock.advance(cfg.RotateWait + 2*cfg.GlobInterval + cfg.PollInterval)
		h.cycle(1)
		if h.c.retired != round+1 {
			t.Fatalf("round %d: %d files retired", round, h.c.retired)
		}
	}
	h.c.exactlyOnce(t, "r", w.n)
	if st := h.tl.Stats()[0]; st.Renames != 3 || st.Files != 1 {
		t.Errorf("stats %+v, want 3 renames and 1 file", st)
	}
}

func TestCopyTruncateRecoversFromCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "c")
	w.write(500)
	h := newHarness(t, testConfig(), []string{path}, nil)
	h.cycle(1)
	for round := 0; round < 2; round++ {
		// Lines the tailer has not read when the copy is taken and the
		// original truncated: only the copy holds them afterwards.
		w.write(3000)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fmt.Sprintf("%s.%d", path, round+1), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := w.f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		w.write(200)
		h.cycle(1)
		if n := h.c.count(); n != w.n {
			t.Fatalf("round %d: %d lines, want %d", round, n, w.n)
		}
	}
	h.c.exactlyOnce(t, "c", w.n)
	st := h.tl.Stats()[0]
	if st.Truncations != 2 || st.Recovered != 2 {
		t.Errorf("stats %+v: want two truncations, both recovered", st)
	}
}

func TestCopyMatchedByGlobIsNotCountedTwice(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "g")
	w.write(300)
	h := newHarness(t, testConfig(), []string{filepath.Join(dir, "access.log*")}, nil)
	h.cycle(1)
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path+".1", data, 0o644); err != nil {
		t.Fatal(err)
	}
	h.cycle(1) // discovery sees the copy, before the truncation, and does not read it
	if err := w.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	w.write(100)
	h.cycle(1)
	// From now on the copy is a file of its own, read from where recovery ended.
	h.cycle(2)
	h.c.exactlyOnce(t, "g", 400)
	if n := h.c.count(); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
}

func TestResumeFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "k")
	w.write(20000)
	// The first run processes a few batches, then stops consuming.
	h1 := newHarness(t, testConfig(), []string{path}, nil)
	h1.consumeUntil("5000 lines", func(c *collector) bool { return len(c.order) >= 5000 })
	h1.stop()
	known := h1.c.snapshot()
	if len(known) != 1 || known[0].Offset == 0 || known[0].FingerprintLen == 0 {
		t.Fatalf("checkpoint %+v", known)
	}
	w.write(1000)
	h2 := newHarness(t, testConfig(), []string{path}, known)
	h2.cycle(1)
	if n := h1.c.count() + h2.c.count(); n != w.n {
		t.Fatalf("%d lines in both runs, want %d", n, w.n)
	}
	for k, n := range h2.c.lines {
		h1.c.lines[k] += n
	}
	h1.c.exactlyOnce(t, "k", w.n)
}

func TestResumeAfterCopyTruncateWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "d")
	w.write(2000)
	h1 := newHarness(t, testConfig(), []string{path}, nil)
	h1.cycle(1)
	h1.stop()
	known := h1.c.snapshot()
	w.write(700) // written while down, then rotated by copytruncate
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path+".1", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	w.write(300)
	h2 := newHarness(t, testConfig(), []string{path}, known)
	h2.cycle(1)
	if n := h1.c.count() + h2.c.count(); n != w.n {
		t.Fatalf("%d lines in both runs, want %d", n, w.n)
	}
	for k, n := range h2.c.lines {
		h1.c.lines[k] += n
	}
	h1.c.exactlyOnce(t, "d", w.n)
}

func TestResumeRotatedAwayWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "o")
	w.write(1000)
	h1 := newHarness(t, testConfig(), []string{path}, nil)
	h1.cycle(1)
	h1.stop()
	known := h1.c.snapshot()
	w.write(400)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.reopen()
	w.write(100)
	h2 := newHarness(t, testConfig(), []string{path}, known)
	h2.cycle(2) // the new file, and the old one found by its identity
	if n := h1.c.count() + h2.c.count(); n != w.n {
		t.Fatalf("%d lines in both runs, want %d", n, w.n)
	}
	for k, n := range h2.c.lines {
		h1.c.lines[k] += n
	}
	h1.c.exactlyOnce(t, "o", w.n)
}

func TestGlobFindsNewFilesAndStartEnd(t *testing.T) {
	dir := t.TempDir()
	old := newWriter(t, filepath.Join(dir, "a.log"), "old")
	old.write(100)
	cfg := testConfig()
	cfg.Start = StartEnd
	h := newHarness(t, cfg, []string{filepath.Join(dir, "*.log")}, nil)
	h.cycle(1)
	old.write(10) // after the start: read
	nw := newWriter(t, filepath.Join(dir, "b.log"), "new")
	nw.write(25) // a file that appears later is read whole
	gz := newWriter(t, filepath.Join(dir, "c.log.gz"), "gz")
	gz.write(5) // excluded
	h.cycle(2)
	if n := h.c.count(); n != 35 {
		t.Fatalf("%d lines, want 35", n)
	}
	for i := 0; i < 10; i++ {
		if h.c.lines[fmt.Sprintf("old-%06d", 100+i)] != 1 {
			t.Errorf("line old-%06d not seen once", 100+i)
		}
	}
	h.c.exactlyOnce(t, "new", 25)
}

func TestLongLinesDroppedAndCounted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.MaxLineBytes = 300 << 10 // between the batch buffer and the 5 MB line
	long := strings.Repeat("x", 5<<20)
	mid := strings.Repeat("y", 280<<10)
	fmt.Fprintf(f, "l-000000\n%s\nl-000001\n%s\nl-000002\n", long, mid)
	h := newHarness(t, cfg, []string{path}, nil)
	h.cycle(1)
	if n := h.c.count(); n != 4 {
		t.Fatalf("%d lines at start, want 4", n)
	}
	// The same while following.
	fmt.Fprintf(f, "%s\nl-000003\n", long)
	h.cycle(1)
	// A long line that arrives in parts: its tail must not become a line.
	split := len(long) - 1000
	fmt.Fprint(f, long[:split])
	h.cycle(1)
	h.cycle(1) // polls inside the line
	fmt.Fprintf(f, "%s\nl-000004\n", long[split:])
	h.cycle(1)
	h.c.exactlyOnce(t, "l", 5)
	if len(h.c.order) != 6 || h.c.dropped != 3 || h.c.lines[mid] != 1 {
		t.Errorf("%d lines (want 6), dropped %d (want 3), mid-size line seen %d times (want 1)", len(h.c.order), h.c.dropped, h.c.lines[mid])
	}
}

func TestBurstIsReadWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "f")
	w.write(10)
	h := newHarness(t, testConfig(), []string{path}, nil)
	h.cycle(1)
	w.write(300000) // ~4.5 MB at once
	h.cycle(1)
	h.c.exactlyOnce(t, "f", w.n)
}

// realTimeLines runs tl on the real clock and returns a function that
// waits, at most 20 s, until n lines were read.
func realTimeLines(t *testing.T, tl *Tailer) func(n int, what string) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go tl.Run(ctx)
	c := newCollector()
	return func(n int, what string) *collector {
		deadline := time.After(20 * time.Second)
		for c.count() < n {
			select {
			case b := <-tl.Batches():
				c.add(tl, b)
			case <-deadline:
				t.Fatalf("%d lines read, want %d: %s", c.count(), n, what)
			}
		}
		return c
	}
}

// Each tailer polls at its own interval: a reload's poll_interval applies.
// (nxadm/tail polled at a package-wide interval that the first tailer set.)
func TestPollIntervalIsPerTailer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "p")
	w.write(1)
	slow := testConfig()
	slow.PollInterval = time.Hour
	first, err := New(slow, []string{path}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	realTimeLines(t, first)(1, "the first tailer's backlog")
	fast, err := New(testConfig(), []string{path}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lines := realTimeLines(t, fast)
	lines(1, "the second tailer's backlog")
	w.write(1) // seen at the next poll, 10 ms away, not an hour
	lines(2, "the second tailer polls at the first one's interval").exactlyOnce(t, "p", 2)
}

// With inotify, a write wakes the reader: an appended line is read though
// the fallback poll is hours away.
func TestInotifyWakesReaders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "i")
	w.write(1)
	cfg := testConfig()
	cfg.Inotify = true
	cfg.PollInterval = time.Hour
	tl, err := New(cfg, []string{path}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lines := realTimeLines(t, tl)
	lines(1, "backlog")
	w.write(1)
	lines(2, "no inotify wakeup").exactlyOnce(t, "i", 2)
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Start = "middle" }, `start: must be checkpoint, beginning or end, not "middle"`},
		{func(c *Config) { c.PollInterval = 0 }, "poll_interval: must be at least 1ms"},
		{func(c *Config) { c.MaxLineBytes = 10 }, "max_line_bytes: must be between 256 and 64 MiB"},
		{func(c *Config) { c.Exclude = []string{"["} }, `exclude[0]: bad pattern "["`},
		{func(c *Config) { c.CatchUpBytes = 1 }, "catch_up_bytes: must be at least 4096"},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want prefix %q", err, tc.want)
		}
	}
}
