package tailer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
	bothRuns(t, h1.c, h2.c, "k", w.n)
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
	bothRuns(t, h1.c, h2.c, "d", w.n)
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
	bothRuns(t, h1.c, h2.c, "o", w.n)
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

// bothRuns checks that two runs together read lines 0..n-1 once each.
func bothRuns(t *testing.T, first, second *collector, prefix string, n int) {
	t.Helper()
	if got := first.count() + second.count(); got != n {
		t.Fatalf("%d lines in both runs, want %d", got, n)
	}
	for k, c := range second.lines {
		first.lines[k] += c
	}
	first.exactlyOnce(t, prefix, n)
}
