package tailer

import (
	"context"
	"io"
	"os"
	"path/filepath"
)

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
	r := &reader{t: t, src: si, f: f, id: id, path: name, fp: fp, fpLen: fpLen, seenAt: t.clock.Now()}
	r.off.Store(offset)
	t.log.Debug("reading log file", "path", name, "offset", offset, "resumed", isKnown, "inode", id.Ino)
	t.startReader(ctx, r, recoverFrom)
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
		t.startReader(ctx, r, recoverFrom)
		t.mu.Unlock()
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
