package tailer

import (
	"context"
	"os"
	"path/filepath"
)

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
