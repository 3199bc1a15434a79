package litellm

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"time"
)

// The baselines are checkpointed in a compact binary form: per process its
// start time, endpoint and when it was last seen, then 16 bytes per series
// (the hash of its labels and its value), about a tenth of JSON's size.
const processesMagic = "LLP1"

// MarshalBinary encodes the baselines, targets and processes in a stable
// order.
func (p *Processes) MarshalBinary() ([]byte, error) {
	n := 0
	for _, procs := range p.targets {
		for _, b := range procs {
			n += 16 * len(b.ids)
		}
	}
	out := make([]byte, 0, n+64)
	out = append(out, processesMagic...)
	names := make([]string, 0, len(p.targets))
	for t := range p.targets {
		names = append(names, t)
	}
	sort.Strings(names)
	out = binary.AppendUvarint(out, uint64(len(names)))
	for _, t := range names {
		procs := p.targets[t]
		out = appendString(out, t)
		out = binary.AppendUvarint(out, uint64(len(procs)))
		for _, k := range sortedKeys(procs) {
			b := procs[k]
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(b.start))
			out = appendString(out, k.endpoint)
			out = binary.AppendVarint(out, b.seen.UnixNano())
			out = binary.AppendUvarint(out, uint64(len(b.ids)))
			for _, id := range b.ids {
				out = binary.LittleEndian.AppendUint64(out, id)
			}
			for _, v := range b.vals {
				out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
			}
		}
	}
	return out, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorrupt = errors.New("litellm baselines: corrupt or truncated")

// UnmarshalBinary restores baselines MarshalBinary wrote.
func (p *Processes) UnmarshalBinary(data []byte) error {
	if len(data) < len(processesMagic) || string(data[:len(processesMagic)]) != processesMagic {
		return errCorrupt
	}
	r := reader{b: data[len(processesMagic):]}
	targets := map[string]map[processKey]*baseline{}
	for nt := r.uvarint(); nt > 0 && r.err == nil; nt-- {
		name := r.string()
		procs := map[processKey]*baseline{}
		for np := r.uvarint(); np > 0 && r.err == nil; np-- {
			b := &baseline{start: math.Float64frombits(r.uint64())}
			endpoint := r.string()
			b.seen = time.Unix(0, r.varint())
			n := r.uvarint()
			if r.err == nil && n > uint64(len(r.b))/16 {
				r.err = errCorrupt
			}
			if r.err != nil {
				break
			}
			b.ids, b.vals = make([]uint64, n), make([]float64, n)
			for i := range b.ids {
				b.ids[i] = r.uint64()
			}
			for i := range b.vals {
				b.vals[i] = math.Float64frombits(r.uint64())
			}
			b.rebuildIndex()
			procs[processKey{start: b.start, endpoint: endpoint}] = b
		}
		targets[name] = procs
	}
	if r.err != nil || len(r.b) != 0 {
		return errCorrupt
	}
	p.targets = targets
	return nil
}

// reader reads what MarshalBinary appended; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errCorrupt
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errCorrupt
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
