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

func (c *collector) consume(t *Tailer, stopAfter func(*collector) bool) {
	for b := range t.Batches() {
		c.mu.Lock()
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
		stop := stopAfter != nil && stopAfter(c)
		c.mu.Unlock()
		t.Release(b)
		if stop {
			// Like a consumer that stops mid-stream: later batches are not processed.
			for b := range t.Batches() {
				t.Release(b)
			}
			return
		}
	}
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

// start runs a tailer over sources with a collector; stop() waits for both.
func start(t *testing.T, cfg Config, sources []string, known []Position, stopAfter func(*collector) bool) (*Tailer, *collector, func()) {
	t.Helper()
	tl, err := New(cfg, sources, known, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); tl.Run(ctx) }()
	go func() { defer wg.Done(); c.consume(tl, stopAfter) }()
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return tl, c, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
	_, c, _ := start(t, testConfig(), []string{path}, nil, nil)
	waitFor(t, "backlog", func() bool { return c.count() == 1000 })
	w.write(10)
	// A partial line is held back until its newline arrives.
	if _, err := w.f.WriteString("a-001010"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "appended lines", func() bool { return c.count() == 1010 })
	time.Sleep(50 * time.Millisecond) // several polls: the partial line must not appear
	if c.count() != 1010 {
		t.Fatalf("partial line handed on: %d lines", c.count())
	}
	if _, err := w.f.WriteString("\n"); err != nil {
		t.Fatal(err)
	}
	w.n++
	waitFor(t, "completed line", func() bool { return c.count() == 1011 })
	c.exactlyOnce(t, "a", 1011)
}

func TestRenameRotationDrainsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "r")
	w.write(100)
	tl, c, _ := start(t, testConfig(), []string{path}, nil, nil)
	waitFor(t, "first lines", func() bool { return c.count() == 100 })
	for round := 0; round < 3; round++ {
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, round)); err != nil {
			t.Fatal(err)
		}
		w.write(50) // the writer has not reopened yet: these go to the renamed file
		w.reopen()
		w.write(100)
		// A file that holds the name for less than a discovery interval is
		// never seen; logrotate does not rotate that fast.
		waitFor(t, "new file followed", func() bool { return c.count() == w.n })
	}
	waitFor(t, "all lines", func() bool { return c.count() == w.n })
	c.exactlyOnce(t, "r", w.n)
	waitFor(t, "rotated files retired", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.retired == 3
	})
	if st := tl.Stats()[0]; st.Renames != 3 || st.Files != 1 {
		t.Errorf("stats %+v, want 3 renames and 1 file", st)
	}
}

func TestCopyTruncateRecoversFromCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "c")
	w.write(500)
	tl, c, _ := start(t, testConfig(), []string{path}, nil, nil)
	waitFor(t, "first lines", func() bool { return c.count() == 500 })
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
		waitFor(t, "lines after truncation", func() bool { return c.count() == w.n })
	}
	c.exactlyOnce(t, "c", w.n)
	st := tl.Stats()[0]
	if st.Truncations < 1 || st.Recovered != st.Truncations {
		t.Errorf("stats %+v: want every truncation recovered", st)
	}
}

func TestCopyMatchedByGlobIsNotCountedTwice(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "g")
	w.write(300)
	_, c, _ := start(t, testConfig(), []string{filepath.Join(dir, "access.log*")}, nil, nil)
	waitFor(t, "first lines", func() bool { return c.count() == 300 })
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path+".1", data, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let discovery see the copy before the truncation
	if err := w.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	w.write(100)
	waitFor(t, "new lines", func() bool { return c.count() >= 400 })
	time.Sleep(100 * time.Millisecond)
	c.exactlyOnce(t, "g", 400)
	if c.count() != 400 {
		t.Fatalf("%d lines, want 400", c.count())
	}
}

func TestResumeFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "k")
	w.write(20000)
	// The first run processes a few batches, then stops consuming.
	_, c1, stop1 := start(t, testConfig(), []string{path}, nil, func(c *collector) bool { return len(c.order) >= 5000 })
	waitFor(t, "first run", func() bool { return c1.count() >= 5000 })
	stop1()
	known := c1.snapshot()
	if len(known) != 1 || known[0].Offset == 0 || known[0].FingerprintLen == 0 {
		t.Fatalf("checkpoint %+v", known)
	}
	w.write(1000)
	_, c2, _ := start(t, testConfig(), []string{path}, known, nil)
	waitFor(t, "second run", func() bool { return c1.count()+c2.count() == w.n })
	for k, n := range c2.lines {
		c1.lines[k] += n
	}
	c1.exactlyOnce(t, "k", w.n)
}

func TestResumeAfterCopyTruncateWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "d")
	w.write(2000)
	_, c1, stop1 := start(t, testConfig(), []string{path}, nil, nil)
	waitFor(t, "first run", func() bool { return c1.count() == 2000 })
	stop1()
	known := c1.snapshot()
	w.write(700) // written while down, then rotated by copytruncate
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path+".1", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	w.write(300)
	_, c2, _ := start(t, testConfig(), []string{path}, known, nil)
	waitFor(t, "second run", func() bool { return c1.count()+c2.count() == w.n })
	for k, n := range c2.lines {
		c1.lines[k] += n
	}
	c1.exactlyOnce(t, "d", w.n)
}

func TestResumeRotatedAwayWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "o")
	w.write(1000)
	_, c1, stop1 := start(t, testConfig(), []string{path}, nil, nil)
	waitFor(t, "first run", func() bool { return c1.count() == 1000 })
	stop1()
	known := c1.snapshot()
	w.write(400)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.reopen()
	w.write(100)
	_, c2, _ := start(t, testConfig(), []string{path}, known, nil)
	waitFor(t, "second run", func() bool { return c1.count()+c2.count() == w.n })
	for k, n := range c2.lines {
		c1.lines[k] += n
	}
	c1.exactlyOnce(t, "o", w.n)
}

func TestGlobFindsNewFilesAndStartEnd(t *testing.T) {
	dir := t.TempDir()
	old := newWriter(t, filepath.Join(dir, "a.log"), "old")
	old.write(100)
	cfg := testConfig()
	cfg.Start = StartEnd
	_, c, _ := start(t, cfg, []string{filepath.Join(dir, "*.log")}, nil, nil)
	time.Sleep(50 * time.Millisecond)
	old.write(10) // after the start: read
	nw := newWriter(t, filepath.Join(dir, "b.log"), "new")
	nw.write(25) // a file that appears later is read whole
	gz := newWriter(t, filepath.Join(dir, "c.log.gz"), "gz")
	gz.write(5)
	waitFor(t, "lines", func() bool { return c.count() == 35 })
	c.mu.Lock()
	for i := 0; i < 10; i++ {
		if c.lines[fmt.Sprintf("old-%06d", 100+i)] != 1 {
			t.Errorf("line old-%06d not seen once", 100+i)
		}
	}
	c.mu.Unlock()
	c.exactlyOnce(t, "new", 25)
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
	_, c, _ := start(t, cfg, []string{path}, nil, nil)
	waitFor(t, "lines", func() bool { return c.count() == 4 })
	// The same while following.
	fmt.Fprintf(f, "%s\nl-000003\n", long)
	waitFor(t, "followed lines", func() bool { return c.count() == 5 })
	// A long line that arrives in parts: its tail must not become a line.
	split := len(long) - 1000
	fmt.Fprint(f, long[:split])
	time.Sleep(50 * time.Millisecond) // several polls inside the line
	fmt.Fprintf(f, "%s\nl-000004\n", long[split:])
	waitFor(t, "line after a split long line", func() bool { return c.count() == 6 })
	time.Sleep(50 * time.Millisecond)
	c.exactlyOnce(t, "l", 5)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.order) != 6 || c.dropped != 3 || c.lines[mid] != 1 {
		t.Errorf("%d lines (want 6), dropped %d (want 3), mid-size line seen %d times (want 1)", len(c.order), c.dropped, c.lines[mid])
	}
}

func TestFollowerFallingBehindCatchesUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := newWriter(t, path, "f")
	w.write(10)
	_, c, _ := start(t, testConfig(), []string{path}, nil, nil)
	waitFor(t, "first lines", func() bool { return c.count() == 10 })
	w.write(300000) // ~4.5 MB at once: beyond catch_up_bytes
	waitFor(t, "burst", func() bool { return c.count() == w.n })
	c.exactlyOnce(t, "f", w.n)
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
