package tailer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"time"
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
	r.seenAt = r.t.clock.Now()
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
	r.lastGrowth = r.t.clock.Now()
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
		_, _, _ = r.ensureFingerprint()
		if r.live() {
			wasLive = true
		} else {
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
		}
		if !r.t.sleep(ctx) {
			return
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
		if !r.t.sleep(ctx) {
			return false
		}
	}
}

// exit unregisters the reader. Copies found of its file are marked as read
// to their current end: they hold lines this reader read.
func (r *reader) exit() {
	r.f.Close()
	defer r.t.exits.wakeAll()
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
	now := r.t.clock.Now()
	idle := now.Sub(r.lastGrowth) >= r.t.cfg.RotateWait
	reachable := now.Sub(seen) < 2*r.t.cfg.GlobInterval+r.t.cfg.PollInterval
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
		r.lastGrowth = r.t.clock.Now()
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
