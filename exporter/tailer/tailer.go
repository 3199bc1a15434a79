// Package tailer finds log files by path or glob and hands their complete
// lines on in batches, each tagged with the file position after its last
// line, so that a consumer can checkpoint exactly what it has processed.
//
// Backlogs (a start from the beginning, a resume after restart, a follower
// that fell behind) are read with large buffered reads; a file that is
// caught up is followed line by line with github.com/nxadm/tail from the
// byte offset where the buffered read stopped. Rotation by rename is followed
// by identity (device and inode): the old file is drained until its writer
// lets go; copytruncate is detected by size and fingerprint, and the lines
// the truncation cut off are read back from the copy when it can be found.
package tailer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nxadm/tail/watch"
)

// Position is a read position in one file, as checkpointed.
type Position struct {
	Source string `json:"source"`
	Path   string `json:"path"`
	FileID
	Fingerprint    uint64 `json:"fingerprint"`
	FingerprintLen int    `json:"fingerprint_len"`
	Offset         int64  `json:"offset"`
}

// Batch is a run of complete lines from one file, in file order.
type Batch struct {
	// Source is the index of the configured path or glob the file matched.
	Source int
	// Pos is the position just after the last line of Data.
	Pos Position
	// Data holds whole lines, each ending in '\n'.
	Data []byte
	// Dropped counts lines skipped for exceeding MaxLineBytes.
	Dropped int
	// Retire says the file is finished: its position can be forgotten.
	Retire bool

	buf []byte
}

const batchBytes = 128 << 10

// SourceStats describes one configured source, for the exporter's own metrics.
type SourceStats struct {
	Source      string
	Files       int   // files being read
	UnreadBytes int64 // bytes in those files beyond the read position
	Renames     uint64
	Truncations uint64
	Recovered   uint64 // truncations whose cut-off lines were read from the copy
}

type sourceCounters struct {
	renames, truncations, recovered atomic.Uint64
}

// Tailer reads the files of its sources. Create it with New, start it with
// Run, consume Batches and hand each batch back with Release.
type Tailer struct {
	cfg     Config
	sources []string
	log     *slog.Logger
	out     chan *Batch
	pool    sync.Pool
	wake    chan struct{}
	wg      sync.WaitGroup
	stats   []sourceCounters

	mu      sync.Mutex
	readers map[FileID]*reader
	known   map[FileID]Position // where to resume a file when it is found
	copies  map[FileID]copyOf   // files that are copies of a followed file
}

// copyOf notes a file found to start like a followed one.
type copyOf struct {
	owner *reader
	path  string
}

var setPollInterval sync.Once

// New prepares a Tailer. known are checkpointed positions; they are used
// when cfg.Start is checkpoint.
func New(cfg Config, sources []string, known []Position, log *slog.Logger) (*Tailer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, errors.New("no log sources")
	}
	for i, s := range sources {
		if err := checkPattern(s); err != nil {
			return nil, errors.New("source " + strconv.Itoa(i) + ": bad pattern " + s + ": " + err.Error())
		}
	}
	// nxadm/tail polls at a package-wide interval; the first tailer sets it.
	setPollInterval.Do(func() { watch.POLL_DURATION = cfg.PollInterval })
	t := &Tailer{
		cfg: cfg, sources: sources, log: log,
		out:     make(chan *Batch, 4),
		wake:    make(chan struct{}, 1),
		stats:   make([]sourceCounters, len(sources)),
		readers: map[FileID]*reader{},
		known:   map[FileID]Position{},
		copies:  map[FileID]copyOf{},
	}
	t.pool.New = func() any { return &Batch{buf: make([]byte, batchBytes)} }
	if cfg.Start == StartCheckpoint {
		for _, p := range known {
			t.known[p.FileID] = p
		}
	}
	return t, nil
}

// Batches delivers the lines read; it is closed when Run returns.
func (t *Tailer) Batches() <-chan *Batch { return t.out }

// Release hands a processed batch back for reuse.
func (t *Tailer) Release(b *Batch) {
	if cap(b.buf) == batchBytes {
		t.pool.Put(b)
	}
}

func (t *Tailer) getBatch(source int) *Batch {
	b := t.pool.Get().(*Batch)
	*b = Batch{Source: source, buf: b.buf}
	return b
}

// send delivers b unless ctx has ended.
func (t *Tailer) send(ctx context.Context, b *Batch) bool {
	if ctx.Err() != nil {
		t.Release(b)
		return false
	}
	select {
	case t.out <- b:
		return true
	case <-ctx.Done():
		t.Release(b)
		return false
	}
}

// Run finds files and reads them until ctx ends, then waits for every
// reader and closes Batches.
func (t *Tailer) Run(ctx context.Context) {
	defer close(t.out)
	t.discover(ctx, true)
	t.resumeOrphans(ctx)
	tick := time.NewTicker(t.cfg.GlobInterval)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			t.discover(ctx, false)
		case <-t.wake:
			t.discover(ctx, false)
		}
	}
	t.wg.Wait()
}

// nudge asks for a discovery pass now, after a rotation.
func (t *Tailer) nudge() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *Tailer) excluded(name string) bool {
	base := filepath.Base(name)
	for _, p := range t.cfg.Exclude {
		if ok, _ := filepath.Match(p, base); ok {
			return true
		}
	}
	return false
}

// sourceOf returns the first source whose pattern matches name, or -1.
func (t *Tailer) sourceOf(name string) int {
	if t.excluded(name) {
		return -1
	}
	for i, s := range t.sources {
		if ok, _ := filepath.Match(s, name); ok {
			return i
		}
	}
	return -1
}

// discover evaluates the globs and starts a reader for every new file.
func (t *Tailer) discover(ctx context.Context, initial bool) {
	for si, pattern := range t.sources {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			continue // validated in New
		}
		for _, name := range matches {
			if t.excluded(name) {
				continue
			}
			t.consider(ctx, si, name, initial)
		}
	}
}

func (t *Tailer) consider(ctx context.Context, si int, name string, initial bool) {
	id, fi, err := statID(name)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.readers[id]; r != nil {
		r.sighted(name)
		return
	}
	if ctx.Err() != nil {
		// Shutting down: readers are leaving the registry, and a new one
		// would read their files again from the start.
		return
	}
	if _, ok := t.copies[id]; ok {
		return
	}
	f, err := os.Open(name)
	if err != nil {
		t.log.Warn("cannot open log file", "path", name, "err", err)
		return
	}
	if ofi, err := f.Stat(); err != nil || idOf(ofi) != id {
		f.Close() // replaced between stat and open: the next pass sees the new file
		return
	}
	fp, fpLen, _ := fingerprint(f)
	var offset int64
	var recoverFrom *Position
	known, isKnown := t.known[id]
	switch {
	case initial && t.cfg.Start == StartBeginning:
	case initial && t.cfg.Start == StartEnd:
		offset = endOfLastLine(f, fi.Size())
	case isKnown:
		delete(t.known, id)
		if known.Offset <= fi.Size() && (known.FingerprintLen == 0 ||
			(known.FingerprintLen == fpLen && known.Fingerprint == fp)) {
			offset = known.Offset
		} else {
			// Same inode, other content: truncated, or the inode was reused.
			recoverFrom = &known
		}
	case fpLen > 0:
		if t.claimAsCopy(id, name, fp, fpLen) {
			f.Close()
			return
		}
	}
	r := &reader{t: t, src: si, f: f, id: id, path: name, fp: fp, fpLen: fpLen, seenAt: time.Now()}
	r.off.Store(offset)
	t.log.Debug("reading log file", "path", name, "offset", offset, "resumed", isKnown, "inode", id.Ino)
	t.readers[id] = r
	t.wg.Add(1)
	go r.run(ctx, recoverFrom)
}

// claimAsCopy records a new file that starts like a followed one as a copy
// of it (logrotate's copytruncate): its lines are counted already, or will
// be read from it when the original is truncated. t.mu is held.
func (t *Tailer) claimAsCopy(id FileID, name string, fp uint64, fpLen int) bool {
	for _, r := range t.readers {
		if r.id != id && r.fpLen == fpLen && r.fp == fp {
			t.copies[id] = copyOf{owner: r, path: name}
			t.log.Debug("file is a copy of a followed file", "path", name, "of", r.path)
			return true
		}
	}
	return false
}

// resumeOrphans looks for checkpointed files that no glob matched any more
// (rotated away while the exporter was down) and reads what is left of them.
func (t *Tailer) resumeOrphans(ctx context.Context) {
	t.mu.Lock()
	orphans := make([]Position, 0, len(t.known))
	for _, p := range t.known {
		orphans = append(orphans, p)
	}
	t.mu.Unlock()
	for _, p := range orphans {
		si := t.sourceIndexByName(p.Source)
		if si < 0 {
			continue // the source is no longer configured
		}
		name, f, ok := findByID(filepath.Dir(p.Path), p.FileID)
		if !ok {
			t.log.Info("checkpointed log file no longer exists", "path", p.Path)
			t.mu.Lock()
			delete(t.known, p.FileID)
			t.mu.Unlock()
			b := t.getBatch(si)
			b.Pos, b.Retire = p, true
			t.send(ctx, b)
			continue
		}
		fp, fpLen, _ := fingerprint(f)
		t.mu.Lock()
		delete(t.known, p.FileID)
		if t.readers[p.FileID] != nil || ctx.Err() != nil {
			t.mu.Unlock()
			f.Close()
			continue
		}
		r := &reader{t: t, src: si, f: f, id: p.FileID, path: name, fp: fp, fpLen: fpLen}
		var recoverFrom *Position
		if p.FingerprintLen == 0 || (p.FingerprintLen == fpLen && p.Fingerprint == fp) {
			r.off.Store(p.Offset)
		} else {
			recoverFrom = &p
		}
		t.readers[p.FileID] = r
		t.wg.Add(1)
		t.mu.Unlock()
		go r.run(ctx, recoverFrom)
	}
}

func (t *Tailer) sourceIndexByName(s string) int {
	for i, p := range t.sources {
		if p == s {
			return i
		}
	}
	return -1
}

// findByID opens the file in dir with the given identity.
func findByID(dir string, id FileID) (string, *os.File, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, false
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		fi, err := os.Stat(name)
		if err != nil || idOf(fi) != id {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return "", nil, false
		}
		if ofi, err := f.Stat(); err != nil || idOf(ofi) != id {
			f.Close()
			return "", nil, false
		}
		return name, f, true
	}
	return "", nil, false
}

// endOfLastLine is the offset just after the last newline before size, so
// that a start "at the end" does not begin in the middle of a line.
func endOfLastLine(f io.ReaderAt, size int64) int64 {
	const window = 64 << 10
	start := max(size-window, 0)
	buf := make([]byte, size-start)
	n, _ := f.ReadAt(buf, start)
	for i := n - 1; i >= 0; i-- {
		if buf[i] == '\n' {
			return start + int64(i) + 1
		}
	}
	return size
}

// Stats reports per-source state; it stats the open files.
func (t *Tailer) Stats() []SourceStats {
	out := make([]SourceStats, len(t.sources))
	for i, s := range t.sources {
		out[i] = SourceStats{Source: s, Renames: t.stats[i].renames.Load(),
			Truncations: t.stats[i].truncations.Load(), Recovered: t.stats[i].recovered.Load()}
	}
	t.mu.Lock()
	readers := make([]*reader, 0, len(t.readers))
	for _, r := range t.readers {
		readers = append(readers, r)
	}
	t.mu.Unlock()
	for _, r := range readers {
		out[r.src].Files++
		if fi, err := r.f.Stat(); err == nil {
			out[r.src].UnreadBytes += max(fi.Size()-r.off.Load(), 0)
		}
	}
	return out
}
