package litellm

import (
	"github.com/usage-exporter/usage-exporter/internal/wire"

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
		out = wire.AppendStr(out, t)
		out = binary.AppendUvarint(out, uint64(len(procs)))
		for _, k := range sortedKeys(procs) {
			b := procs[k]
			out = wire.AppendFloat64(out, b.start)
			out = wire.AppendStr(out, k.endpoint)
			out = binary.AppendVarint(out, b.seen.UnixNano())
			out = binary.AppendUvarint(out, uint64(len(b.ids)))
			for _, id := range b.ids {
				out = binary.LittleEndian.AppendUint64(out, id)
			}
			for _, v := range b.vals {
				out = wire.AppendFloat64(out, v)
			}
		}
	}
	return out, nil
}

var errCorrupt = errors.New("litellm baselines: corrupt or truncated")

// UnmarshalBinary restores baselines MarshalBinary wrote.
func (p *Processes) UnmarshalBinary(data []byte) error {
	if len(data) < len(processesMagic) || string(data[:len(processesMagic)]) != processesMagic {
		return errCorrupt
	}
	r := wire.NewReader(data[len(processesMagic):], errCorrupt)
	targets := map[string]map[processKey]*baseline{}
	for nt := r.Uvarint(); nt > 0 && r.Err == nil; nt-- {
		name := r.Str()
		procs := map[processKey]*baseline{}
		for np := r.Uvarint(); np > 0 && r.Err == nil; np-- {
			b := &baseline{start: r.Float64()}
			if math.IsNaN(b.start) { // a NaN key could never be found again in the map
				return errCorrupt
			}
			endpoint := r.Str()
			b.seen = time.Unix(0, r.Varint())
			n := r.Count(16) // an id and a value, 8 bytes each
			if r.Err != nil {
				break
			}
			b.ids, b.vals = make([]uint64, n), make([]float64, n)
			for i := range b.ids {
				b.ids[i] = r.Uint64()
			}
			for i := range b.vals {
				b.vals[i] = r.Float64()
			}
			b.rebuildIndex()
			procs[processKey{start: b.start, endpoint: endpoint}] = b
		}
		targets[name] = procs
	}
	if r.Err != nil || len(r.B) != 0 {
		return errCorrupt
	}
	p.targets = targets
	return nil
}
