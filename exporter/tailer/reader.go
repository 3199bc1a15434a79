package tailer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nxadm/tail"
)

// reader reads one file, identified by device and inode, whatever its name.
type reader struct {
	t   *Tailer
	src int
	f   *os.File
	id  FileID
	off atomic.Int64 // read position: just after the last line handed on

	// Guarded by t.mu.
	path    string    // the file's name as last seen
	seenAt  time.Time // last time discovery saw the file under a matching name
	fp      uint64
	fpLen   int
	pending bool // waiting for a first line before reading anything
	claimed bool // found to be a copy while pending: never read it

	lastGrowth time.Time // last time a read found new data
	skipping   bool      // inside an over-long line, discarding up to its newline
}

// sighted records that discovery found the file under name (t.mu held).
func (r *reader) sighted(name string) {
	r.path = name
	r.seenAt = time.Now()
}

func (r *reader) currentPath() string {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	return r.path
}

func (r *reader) position() Position {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	return Position{Source: r.t.sources[r.src], Path: r.path, FileID: r.id, Fingerprint: r.fp,
		FingerprintLen: r.fpLen, Offset: r.off.Load()}
}

func (r *reader) run(ctx context.Context, recoverFrom *Position) {
	defer r.t.wg.Done()
	defer r.exit()
	r.lastGrowth = time.Now()
	if !r.awaitFirstLine(ctx) {
		return
	}
	if recoverFrom != nil {
		if !r.recoverTruncated(ctx, *recoverFrom, false) {
			return
		}
	} else if !r.sendPosition(ctx) {
		return
	}
	wasLive := false
	for ctx.Err() == nil {
		fi, err := r.f.Stat()
		if err != nil {
			r.t.log.Warn("cannot stat open log file", "path", r.currentPath(), "err", err)
			return
		}
		if r.truncated(fi) {
			if !r.recoverTruncated(ctx, r.position(), true) {
				return
			}
			continue
		}
		if !r.readToEOF(ctx) {
			return
		}
		live := r.live()
		if live && !r.skipping {
			wasLive = true
			if r.follow(ctx) == endStop {
				return
			}
			continue
		}
		if live {
			// Inside an over-long line still being written: keep discarding
			// with buffered reads; nxadm/tail would hand on its tail as a line.
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.t.cfg.PollInterval):
			}
			continue
		}
		if wasLive {
			// Renamed away or deleted: the new file at the name needs a reader.
			wasLive = false
			r.t.stats[r.src].renames.Add(1)
			r.t.nudge()
		}
		// Keep reading while the writer may still write to the old file,
		// then let it go unless a glob still matches it.
		if r.finished() {
			r.retire(ctx)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.t.cfg.PollInterval):
		}
	}
}

// awaitFirstLine holds back a new file until it has a complete first line:
// until then it cannot be told from a copy being written. It returns false
// when the reader must end: ctx ended, or the file turned out to be a copy.
func (r *reader) awaitFirstLine(ctx context.Context) bool {
	for {
		r.t.mu.Lock()
		known, claimed := r.fpLen > 0, r.claimed
		r.pending = !known && r.off.Load() == 0 && !claimed
		r.t.mu.Unlock()
		if claimed {
			return false
		}
		if known || r.off.Load() > 0 {
			return true
		}
		if fp, n, err := fingerprint(r.f); err == nil && n > 0 {
			r.t.mu.Lock()
			defer r.t.mu.Unlock()
			if r.claimed {
				return false
			}
			r.pending = false
			if r.t.claimAsCopy(r.id, r.path, fp, n) {
				delete(r.t.readers, r.id)
				return false
			}
			r.fp, r.fpLen = fp, n
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(r.t.cfg.PollInterval):
		}
	}
}

// exit unregisters the reader. Copies found of its file are marked as read
// to their current end: they hold lines this reader read.
func (r *reader) exit() {
	r.f.Close()
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.t.readers[r.id] == r {
		delete(r.t.readers, r.id)
	}
	for id, c := range r.t.copies {
		if c.owner != r {
			continue
		}
		delete(r.t.copies, id)
		if cid, fi, err := statID(c.path); err == nil && cid == id {
			r.t.known[id] = Position{Source: r.t.sources[r.src], Path: c.path, FileID: id, Offset: fi.Size()}
		}
	}
}

// live reports whether the file still has its name: then it is followed.
func (r *reader) live() bool {
	id, _, err := statID(r.currentPath())
	return err == nil && id == r.id
}

// finished: not grown for RotateWait and no longer under a matching name.
func (r *reader) finished() bool {
	r.t.mu.Lock()
	seen := r.seenAt
	r.t.mu.Unlock()
	idle := time.Since(r.lastGrowth) >= r.t.cfg.RotateWait
	reachable := time.Since(seen) < 2*r.t.cfg.GlobInterval+r.t.cfg.PollInterval
	return idle && !reachable
}

func (r *reader) retire(ctx context.Context) {
	pos := r.position()
	r.t.mu.Lock()
	r.t.known[r.id] = pos // should it reappear under a matching name, resume
	r.t.mu.Unlock()
	r.t.log.Debug("done with rotated log file", "path", pos.Path, "offset", pos.Offset, "inode", r.id.Ino)
	b := r.t.getBatch(r.src)
	b.Pos, b.Retire = pos, true
	r.t.send(ctx, b)
}

// truncated: the file is shorter than what was read, or starts differently.
func (r *reader) truncated(fi os.FileInfo) bool {
	if fi.Size() < r.off.Load() {
		return true
	}
	r.t.mu.Lock()
	fp, n := r.fp, r.fpLen
	r.t.mu.Unlock()
	return n > 0 && !matchesFingerprint(r.f, fp, n)
}

// readToEOF hands on every complete line from the read position to the end
// of the file, in batches. It returns false when ctx ended.
func (r *reader) readToEOF(ctx context.Context) bool {
	for {
		b := r.t.getBatch(r.src)
		buf := b.buf[:cap(b.buf)]
		off := r.off.Load()
		n, err := r.f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			r.t.Release(b)
			r.t.log.Warn("read error", "path", r.currentPath(), "err", err)
			return ctx.Err() == nil
		}
		if n == 0 {
			r.t.Release(b)
			return true
		}
		r.lastGrowth = time.Now()
		data := buf[:n]
		if r.skipping {
			nl := bytes.IndexByte(data, '\n')
			if nl < 0 {
				r.off.Store(off + int64(n))
				r.t.Release(b)
				continue
			}
			r.skipping = false
			r.off.Store(off + int64(nl) + 1)
			b.Dropped = 1
			b.Pos = r.position()
			if !r.t.send(ctx, b) {
				return false
			}
			continue
		}
		last := bytes.LastIndexByte(data, '\n')
		if last < 0 {
			r.t.Release(b)
			if n < len(buf) {
				return true // a partial line at the end: wait for the rest
			}
			// A line longer than the buffer: read it whole if allowed, else skip it.
			progressed, ok := r.readLongLine(ctx, off)
			if !ok || !progressed {
				return ok
			}
			continue
		}
		b.Data = data[:last+1]
		r.off.Store(off + int64(last) + 1)
		if off == 0 {
			r.setFingerprintFrom(b.Data)
		}
		b.Pos = r.position()
		if !r.t.send(ctx, b) {
			return false
		}
		if n < len(buf) {
			return true
		}
	}
}

// readLongLine handles a line that does not fit a batch buffer, starting
// at off. progressed is false when the line is incomplete and may still grow.
func (r *reader) readLongLine(ctx context.Context, off int64) (progressed, ok bool) {
	limit := r.t.cfg.MaxLineBytes + 1 // the newline
	buf := make([]byte, limit)
	n, err := r.f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, ctx.Err() == nil
	}
	nl := bytes.IndexByte(buf[:n], '\n')
	switch {
	case nl >= 0:
		b := &Batch{Source: r.src, Data: buf[:nl+1]}
		r.off.Store(off + int64(nl) + 1)
		if off == 0 {
			r.setFingerprintFrom(b.Data)
		}
		b.Pos = r.position()
		return true, r.t.send(ctx, b)
	case n == limit:
		r.skipping = true // too long: discard through its newline
		r.off.Store(off + int64(n))
		return true, true
	default:
		return false, true
	}
}

func (r *reader) setFingerprintFrom(data []byte) {
	if fp, n, ok := fingerprintFromData(data); ok {
		r.t.mu.Lock()
		r.fp, r.fpLen = fp, n
		r.t.mu.Unlock()
	}
}

// ensureFingerprint computes the fingerprint of a file first read from an
// offset (a resume or a start at the end), once it has a first line.
func (r *reader) ensureFingerprint() (uint64, int, error) {
	r.t.mu.Lock()
	fp, n := r.fp, r.fpLen
	r.t.mu.Unlock()
	if n > 0 {
		return fp, n, nil
	}
	fp, n, err := fingerprint(r.f)
	if err == nil && n > 0 {
		r.t.mu.Lock()
		r.fp, r.fpLen = fp, n
		r.t.mu.Unlock()
	}
	return fp, n, err
}

type followEnd int

const (
	endStop      followEnd = iota // ctx ended
	endCheck                      // look at the file again: rotated, truncated, behind, or tail ended
	endTruncated                  // the file was truncated under the follower
)

// follow hands on lines one by one as nxadm/tail delivers them, from the
// read position, while the file keeps its name and the follower keeps up.
func (r *reader) follow(ctx context.Context) followEnd {
	_, _, _ = r.ensureFingerprint()
	path := r.currentPath()
	tl, err := tail.TailFile(path, tail.Config{
		Location:      &tail.SeekInfo{Offset: r.off.Load(), Whence: io.SeekStart},
		Follow:        true,
		MustExist:     true, // opens now, so the identity check below covers the file it opened
		Poll:          !r.t.cfg.Inotify,
		CompleteLines: true,
		Logger:        tail.DiscardingLogger,
	})
	if err != nil {
		return endCheck
	}
	defer func() {
		_ = tl.Stop()
		if r.t.cfg.Inotify {
			tl.Cleanup()
		}
	}()
	if !r.live() {
		return endCheck // renamed between the check and the open
	}
	tick := time.NewTicker(r.t.cfg.PollInterval)
	defer tick.Stop()

	var b *Batch
	flush := func() bool {
		if b == nil {
			return true
		}
		b.Pos = r.position()
		ok := r.t.send(ctx, b)
		b = nil
		_, _, _ = r.ensureFingerprint()
		return ok
	}
	defer func() {
		if b != nil {
			r.t.Release(b)
		}
	}()
	sinceCheck := 0
	for {
		var line *tail.Line
		var ok bool
		if b == nil {
			select {
			case <-ctx.Done():
				return endStop
			case line, ok = <-tl.Lines:
			case <-tick.C:
				if end, stop := r.check(path); stop {
					return end
				}
				continue
			}
		} else {
			// Lines that are ready go into the same batch; otherwise flush.
			select {
			case line, ok = <-tl.Lines:
			default:
				if !flush() {
					return endStop
				}
				continue
			}
		}
		if !ok || line.Err != nil {
			if !flush() {
				return endStop
			}
			return endCheck
		}
		off := r.off.Load()
		if line.SeekInfo.Offset != off+int64(len(line.Text))+1 {
			// Not the line after the read position: nxadm/tail reopened a
			// truncated file. Drop it; the caller re-reads from the file.
			if !flush() {
				return endStop
			}
			return endTruncated
		}
		if b == nil {
			b = r.t.getBatch(r.src)
			b.Data = b.buf[:0]
		}
		if len(b.Data)+len(line.Text)+1 > cap(b.buf) {
			if !flush() {
				return endStop
			}
			b = r.t.getBatch(r.src)
			b.Data = b.buf[:0]
		}
		if len(line.Text) > r.t.cfg.MaxLineBytes {
			b.Dropped++
		} else {
			b.Data = append(b.Data, line.Text...)
			b.Data = append(b.Data, '\n')
		}
		r.off.Store(line.SeekInfo.Offset)
		r.lastGrowth = time.Now()
		if sinceCheck++; sinceCheck >= 4096 {
			sinceCheck = 0
			if end, stop := r.check(path); stop {
				if !flush() {
					return endStop
				}
				return end
			}
		}
	}
}

// check decides whether following must stop: the file was renamed or
// truncated, or the follower is too far behind to keep reading line by line.
func (r *reader) check(path string) (followEnd, bool) {
	fi, err := r.f.Stat()
	if err != nil {
		return endCheck, true
	}
	switch {
	case r.truncated(fi):
		return endTruncated, true
	case fi.Size()-r.off.Load() > r.t.cfg.CatchUpBytes:
		return endCheck, true
	case r.currentPath() != path || !r.live():
		return endCheck, true
	}
	return 0, false
}

// recoverTruncated handles a file truncated (or replaced in place) after
// the content described by old was read up to old.Offset: the lines between
// old.Offset and the truncation are read from the copy, if one can be
// found, and the file is read again from its start. seen is true when the
// truncation was observed while following, false when found at start.
func (r *reader) recoverTruncated(ctx context.Context, old Position, seen bool) bool {
	t := r.t
	recovered := old.FingerprintLen > 0 && r.readFromCopy(ctx, old)
	if ctx.Err() != nil {
		return false
	}
	switch {
	case recovered:
		t.stats[r.src].truncations.Add(1)
		t.stats[r.src].recovered.Add(1)
		t.log.Info("log file truncated; read the rest of its old content from the copy", "path", old.Path)
	case seen:
		t.stats[r.src].truncations.Add(1)
		t.log.Warn("log file truncated and no copy of its old content found: lines written after the last read are lost",
			"path", old.Path, "read_offset", old.Offset)
	default:
		t.log.Info("log file content changed since the checkpoint; reading it from the start", "path", old.Path)
	}
	t.mu.Lock()
	r.fp, r.fpLen = 0, 0
	t.mu.Unlock()
	r.off.Store(0)
	r.skipping = false
	// Checkpoint the reset at once, so that a restart does not recover again.
	return r.sendPosition(ctx)
}

// sendPosition hands on the read position without lines, so that the
// consumer's checkpoint knows the file from the moment it is taken up.
func (r *reader) sendPosition(ctx context.Context) bool {
	b := r.t.getBatch(r.src)
	b.Pos = r.position()
	return r.t.send(ctx, b)
}

// readFromCopy finds the copy of old's content next to old.Path and reads
// it from where old left off to its end.
func (r *reader) readFromCopy(ctx context.Context, old Position) bool {
	t := r.t
	dir := filepath.Dir(old.Path)
	t.mu.Lock()
	var candidates []string
	for id, c := range t.copies {
		if c.owner == r {
			delete(t.copies, id)
		}
	}
	t.mu.Unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Type().IsRegular() && !t.excluded(e.Name()) {
			candidates = append(candidates, filepath.Join(dir, e.Name()))
		}
	}
	for _, name := range candidates {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		id := idOf(fi)
		if err != nil || id == r.id || !matchesFingerprint(f, old.Fingerprint, old.FingerprintLen) {
			f.Close()
			continue
		}
		t.mu.Lock()
		if rr := t.readers[id]; rr != nil {
			if !rr.pending {
				t.mu.Unlock()
				f.Close()
				continue // already followed in its own right
			}
			// Found while its first line was being written: it is the copy.
			rr.claimed = true
			delete(t.readers, id)
		}
		start := old.Offset
		if k, ok := t.known[id]; ok {
			start = k.Offset // recovered before a restart: resume, do not repeat
		}
		t.mu.Unlock()
		if fi.Size() < start {
			f.Close()
			continue
		}
		cp := &reader{t: t, src: r.src, f: f, id: id, path: name, fp: old.Fingerprint, fpLen: old.FingerprintLen}
		cp.off.Store(start)
		ok := cp.readToEOF(ctx)
		f.Close()
		if !ok {
			return false
		}
		pos := cp.position()
		t.mu.Lock()
		delete(t.copies, id)
		matched := t.sourceOf(name) >= 0
		if matched {
			t.known[id] = pos // a glob matches the copy: resume it where recovery ended
		} else {
			delete(t.known, id)
		}
		t.mu.Unlock()
		// Checkpoint the copy's position even when nothing was left to read,
		// so that a restart does not take it for a new file.
		b := t.getBatch(r.src)
		b.Pos, b.Retire = pos, !matched
		t.send(ctx, b)
		return true
	}
	return false
}
