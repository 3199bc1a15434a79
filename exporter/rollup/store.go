package rollup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Files is where sealed days live (the state directory): files written
// atomically, read back, removed.
type Files interface {
	WriteBytes(name string, data []byte) error
	ReadBytes(name string) ([]byte, bool, error)
	Remove(name string) error
	// List returns the names of the files starting with prefix.
	List(prefix string) ([]string, error)
}

// FilePrefix starts the name of every sealed day's file.
const FilePrefix = "rollup-"

// fileName is the file of a day's generation.
func fileName(dn int32, gen uint32) string {
	return fmt.Sprintf("%s%d-%d.bin", FilePrefix, dn, gen)
}

// sealGrace is how long (ms) after a day ends its open part waits for
// late lines before it is sealed.
const sealGrace = msPerHour

// Saved is the rollups as of one checkpoint: the open days encoded, the
// sealed days the state file counts on, and the files no longer needed
// once the state file is written.
type Saved struct {
	Open     map[int32][]byte
	Sealed   map[int32]uint32
	Newest   int64
	Oldest   int64
	Obsolete []string
	// SealErrors are days that could not be sealed (they stay open).
	SealErrors int
}

// Checkpoint seals the days the newest line left behind (writing their
// files now: no state file refers to them yet), forgets the days past the
// retention, and encodes the open days. Only the ingest goroutine calls it.
func (r *Rollups) Checkpoint() *Saved {
	newestDay := int32(floorDiv(r.newest, msPerDay))
	cutoff := newestDay - r.retention
	s := &Saved{Open: map[int32][]byte{}, Newest: r.newest, Oldest: r.oldest}
	for _, dn := range slices.Sorted(maps.Keys(r.days)) {
		d := r.days[dn]
		if dn <= cutoff {
			delete(r.days, dn)
			continue
		}
		data := encodeDay(dn, d, &r.names)
		if int64(dn+1)*msPerDay+sealGrace <= r.newest {
			// A new generation each time: the file of an earlier sealing may
			// still be there, until a state file without it is written.
			gen := r.gens[dn] + 1
			if err := r.files.WriteBytes(fileName(dn, gen), data); err == nil {
				r.gens[dn] = gen
				r.sealed[dn] = gen
				r.sealedForShare(dn, data)
				delete(r.days, dn)
				if r.cache.d == d {
					r.cache = hourCache{}
				}
				continue
			}
			s.SealErrors++
		}
		s.Open[dn] = data
	}
	for dn := range r.sealed {
		if dn <= cutoff {
			r.published.obsolete(r.sealedFile(dn))
			delete(r.sealed, dn)
		}
	}
	for dn := range r.gens {
		if dn <= cutoff {
			delete(r.gens, dn)
		}
	}
	s.Sealed = maps.Clone(r.sealed)
	s.Obsolete = r.published.pending()
	return s
}

// sealedFile is the file of a sealed day, "" when it is not sealed.
func (r *Rollups) sealedFile(dn int32) string {
	if gen, ok := r.sealed[dn]; ok {
		return fileName(dn, gen)
	}
	return ""
}

// reopen makes a day open: a sealed day is read back (a late line), and
// its file becomes obsolete with the next checkpoint. A day whose file
// cannot be read is not reopened: nil, and the line counts in the series
// only.
func (r *Rollups) reopen(dn int32) *day {
	if _, ok := r.sealed[dn]; !ok {
		d := &day{}
		r.days[dn] = d
		return d
	}
	name := r.sealedFile(dn)
	data, found, err := r.files.ReadBytes(name)
	if err != nil || !found {
		return nil
	}
	_, d, err := decodeDay(data, &r.names)
	if err != nil {
		return nil
	}
	r.published.obsolete(name)
	delete(r.sealed, dn)
	r.days[dn] = d
	return d
}

// Saved reports that s is durable in the state file: windows read it from
// now on, and the files it no longer counts on are removed.
func (r *Rollups) Saved(s *Saved) {
	r.published.set(&view{open: s.Open, sealed: s.Sealed, newest: s.Newest, oldest: s.Oldest})
	var removed []string
	for _, name := range s.Obsolete {
		if err := r.files.Remove(name); err == nil {
			removed = append(removed, name)
		}
	}
	r.published.done(removed)
}

// Restore continues from a checkpoint's rollups: the open days are decoded,
// the sealed ones named; files of sealed days no state file counts on (a
// crash between writing one and the state file) are removed. renameUser,
// when set, renames the users of the open days (user ids now hashed); the
// sealed days keep theirs until they age out.
func (r *Rollups) Restore(s *Saved, renameUser func(string) string) error {
	r.newest, r.oldest = s.Newest, s.Oldest
	open := s.Open
	for _, data := range s.Open {
		dn, d, err := decodeDay(data, &r.names)
		if err != nil {
			return err
		}
		r.days[dn] = d
	}
	if renameUser != nil {
		t := &r.names[tUser]
		clear(t.index)
		for i, n := range t.names {
			t.names[i] = renameUser(n)
			if _, dup := t.index[t.names[i]]; !dup {
				t.index[t.names[i]] = int32(i)
			}
		}
		open = map[int32][]byte{}
		for dn, d := range r.days {
			open[dn] = encodeDay(dn, d, &r.names)
		}
	}
	r.sealed = maps.Clone(s.Sealed)
	if r.sealed == nil {
		r.sealed = map[int32]uint32{}
	}
	r.gens = maps.Clone(r.sealed)
	r.published.set(&view{open: open, sealed: maps.Clone(r.sealed), newest: s.Newest, oldest: s.Oldest})
	names, err := r.files.List(FilePrefix)
	if err != nil {
		return nil // orphans stay; nothing counts them
	}
	for _, name := range names {
		if dn, gen, ok := parseFileName(name); !ok || r.sealed[dn] != gen {
			_ = r.files.Remove(name)
		}
	}
	return nil
}

func parseFileName(name string) (int32, uint32, bool) {
	rest, ok := strings.CutPrefix(name, FilePrefix)
	if !ok {
		return 0, 0, false
	}
	rest, ok = strings.CutSuffix(rest, ".bin")
	d, g, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 {
		return 0, 0, false
	}
	dn, err1 := strconv.ParseInt(d, 10, 32)
	gen, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return int32(dn), uint32(gen), true
}

// view is what a saved checkpoint holds of the rollups.
type view struct {
	open   map[int32][]byte
	sealed map[int32]uint32
	newest int64
	oldest int64
}

// published is the view windows read, and the files to remove.
type published struct {
	mu    sync.Mutex
	v     *view
	files map[string]bool // obsolete, not yet removed
}

func (p *published) set(v *view) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.v = v
}

func (p *published) get() *view {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.v
}

func (p *published) obsolete(name string) {
	if name == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.files == nil {
		p.files = map[string]bool{}
	}
	p.files[name] = true
}

func (p *published) pending() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.files))
}

func (p *published) done(names []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range names {
		delete(p.files, n)
	}
}

// Encode writes a Saved for the state file.
func (s *Saved) Encode() []byte {
	var b []byte
	b = append(b, "RUS1"...)
	b = binary.AppendVarint(b, s.Newest)
	b = binary.AppendVarint(b, s.Oldest)
	b = binary.AppendUvarint(b, uint64(len(s.Sealed)))
	for _, dn := range slices.Sorted(maps.Keys(s.Sealed)) {
		b = binary.AppendVarint(b, int64(dn))
		b = binary.AppendUvarint(b, uint64(s.Sealed[dn]))
	}
	b = binary.AppendUvarint(b, uint64(len(s.Open)))
	for _, dn := range slices.Sorted(maps.Keys(s.Open)) {
		b = binary.AppendUvarint(b, uint64(len(s.Open[dn])))
		b = append(b, s.Open[dn]...)
	}
	return b
}

// DecodeSaved reads what Encode wrote.
func DecodeSaved(data []byte) (*Saved, error) {
	if len(data) < 4 || string(data[:4]) != "RUS1" {
		return nil, errors.New("rollup: not a rollups checkpoint")
	}
	d := newDecoder(data[4:])
	s := &Saved{Newest: d.Varint(), Oldest: d.Varint(), Sealed: map[int32]uint32{}, Open: map[int32][]byte{}}
	for range d.Count(2) {
		dn := int32(d.Varint())
		s.Sealed[dn] = uint32(d.Uvarint())
	}
	for range d.Count(1) {
		n := d.Uvarint()
		if n > uint64(len(d.B)) || n < 4 {
			d.Fail(nil)
			break
		}
		part := d.B[:n]
		d.B = d.B[n:]
		dn, _, err := decodeDay(part, &[numTables]table{})
		if err != nil {
			d.Fail(nil)
			break
		}
		s.Open[dn] = part
	}
	if d.Err != nil || len(d.B) != 0 {
		return nil, errCorrupt
	}
	return s, nil
}

// RenameUser renames the users named in names to as, in every day kept:
// the sealed days are reopened, so that the next Checkpoint writes them
// again without the old names and Saved removes their old files. It
// returns the number of days reopened or open.
func (r *Rollups) RenameUser(names []string, as string) (int, error) {
	for _, dn := range slices.Sorted(maps.Keys(r.sealed)) {
		if r.reopen(dn) == nil {
			return 0, fmt.Errorf("rollups: the file of day %d cannot be read", dn)
		}
	}
	renameIn(&r.names[tUser], names, as)
	r.cache = hourCache{}
	return len(r.days), nil
}

// renameIn renames names to as in a table; it reports whether one was there.
func renameIn(t *table, names []string, as string) bool {
	found := false
	for _, n := range names {
		i, ok := t.index[n]
		if !ok {
			continue
		}
		found = true
		delete(t.index, n)
		t.names[i] = as
		if _, dup := t.index[as]; !dup {
			t.index[as] = i
		}
	}
	return found
}

// renameInDay re-encodes one encoded day with the users in names renamed to
// as; changed is false when the day names none of them.
func renameInDay(data []byte, names []string, as string) (out []byte, changed bool, err error) {
	var tabs [numTables]table
	dn, d, err := decodeDay(data, &tabs)
	if err != nil || !renameIn(&tabs[tUser], names, as) {
		return data, false, err
	}
	return encodeDay(dn, d, &tabs), true, nil
}
