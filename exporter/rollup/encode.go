package rollup

import (
	"github.com/usage-exporter/usage-exporter/internal/wire"

	"encoding/binary"
	"errors"
	"math"

	"github.com/usage-exporter/usage-exporter/internal/window"
)

// A day is encoded with the names it uses (a table each, referred to by
// position), then its hours, its users, and its distinct-user sketches by
// service (magic RUD2; RUD1 days, written before the sketches, have none). Numbers that are whole (counts,
// most token figures) take a varint; others 9 bytes.
const (
	dayMagic  = "RUD2"
	dayMagic1 = "RUD1"
)

var errCorrupt = errors.New("rollup: corrupt or truncated day")

type encoder struct {
	b     []byte
	local [numTables]map[int32]uint64 // global id -> position in the day's table
	names [numTables][]string
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

// num writes a figure: a whole number as a varint of twice it, anything
// else as 1 and its 8 bytes.
func (e *encoder) num(v float64) {
	if v >= 0 && v < 1<<52 && v == math.Trunc(v) {
		e.uvarint(uint64(v) << 1)
		return
	}
	e.uvarint(1)
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v))
}

func (e *encoder) ref(t int, id int32, names *[numTables]table) {
	m := e.local[t]
	if m == nil {
		m = map[int32]uint64{}
		e.local[t] = m
	}
	pos, ok := m[id]
	if !ok {
		pos = uint64(len(e.names[t]))
		m[id] = pos
		e.names[t] = append(e.names[t], names[t].names[id])
	}
	e.uvarint(pos)
}

// encodeDay encodes a day; the names come first, so the body is built
// apart.
func encodeDay(dn int32, d *day, names *[numTables]table) []byte {
	body := &encoder{}
	body.uvarint(count(d.hours[:]))
	for i, h := range d.hours {
		if h == nil {
			continue
		}
		body.uvarint(uint64(i))
		encodeHour(body, h, names)
	}
	body.uvarint(count(d.users))
	for id, u := range d.users {
		if u == nil {
			continue
		}
		body.ref(tUser, int32(id), names)
		body.ref(tTier, u.tier, names)
		body.num(u.calls)
		body.num(u.cost)
		body.num(u.tokens)
		body.uvarint(nonzero(u.byService))
		for s, c := range u.byService {
			if c != 0 {
				body.ref(tService, int32(s), names)
				body.num(c)
			}
		}
	}
	body.uvarint(count(d.distinct))
	for s, x := range d.distinct {
		if x != nil {
			body.ref(tService, int32(s), names)
			body.b = x.AppendBinary(body.b)
		}
	}
	out := &encoder{b: make([]byte, 0, len(body.b)+1024)}
	out.b = append(out.b, dayMagic...)
	out.b = binary.AppendVarint(out.b, int64(dn))
	out.b = binary.AppendVarint(out.b, d.first)
	out.b = binary.AppendVarint(out.b, d.last)
	for t := range numTables {
		out.uvarint(uint64(len(body.names[t])))
		for _, s := range body.names[t] {
			out.uvarint(uint64(len(s)))
			out.b = append(out.b, s...)
		}
	}
	return append(out.b, body.b...)
}

// nonzero counts the values written of a sparse slice.
func nonzero(s []float64) uint64 {
	var n uint64
	for _, v := range s {
		if v != 0 {
			n++
		}
	}
	return n
}

// count counts the elements written of a slice of pointers.
func count[T any](s []*T) uint64 {
	var n uint64
	for _, x := range s {
		if x != nil {
			n++
		}
	}
	return n
}

func encodeHour(e *encoder, h *hour, names *[numTables]table) {
	e.uvarint(count(h.services))
	for id, s := range h.services {
		if s == nil {
			continue
		}
		e.ref(tService, int32(id), names)
		for _, v := range [...]float64{s.calls, s.errors, s.timeouts, s.duplicates, s.cost, s.perCall, s.egress, s.bytes,
			s.latSum, s.latCount} {
			e.num(v)
		}
		e.uvarint(s.latency.Zero)
		e.b = binary.AppendVarint(e.b, int64(s.latency.First))
		e.uvarint(uint64(len(s.latency.Counts)))
		for _, c := range s.latency.Counts {
			e.uvarint(c)
		}
	}
	e.uvarint(count(h.routes))
	for id, rt := range h.routes {
		if rt == nil {
			continue
		}
		e.ref(tRoute, int32(id), names)
		for _, v := range [...]float64{rt.calls, rt.errors, rt.latSum, rt.latCount} {
			e.num(v)
		}
	}
	e.uvarint(count(h.models))
	for id, m := range h.models {
		if m == nil {
			continue
		}
		e.ref(tModel, int32(id), names)
		e.num(m.calls)
		e.num(m.failures)
		for _, v := range m.tokens {
			e.num(v)
		}
		e.num(m.cost)
		for _, v := range m.prompts {
			e.num(v)
		}
	}
	e.uvarint(count(h.tiers))
	for id, t := range h.tiers {
		if t == nil {
			continue
		}
		e.ref(tTier, int32(id), names)
		e.num(t.calls)
		e.num(t.cost)
	}
	e.uvarint(nonzero(h.unpriced))
	for id, v := range h.unpriced {
		if v != 0 {
			e.ref(tReason, int32(id), names)
			e.num(v)
		}
	}
}

// decoder reads a day: wire's reads, and the day's names' ids.
type decoder struct {
	wire.Reader
	local [numTables][]int32 // position in the day's table -> id in the tables decoded into
}

func newDecoder(b []byte) *decoder { return &decoder{Reader: wire.NewReader(b, errCorrupt)} }

func (d *decoder) num() float64 {
	x := d.Uvarint()
	if x&1 == 0 {
		return float64(x >> 1)
	}
	if x != 1 {
		d.Fail(nil)
		return 0
	}
	return d.Float64()
}

func (d *decoder) ref(t int) int32 {
	pos := d.Uvarint()
	if pos >= uint64(len(d.local[t])) {
		d.Fail(nil)
		return 0
	}
	return d.local[t][pos]
}

// decodeDay decodes a day, its names interned into names.
func decodeDay(data []byte, names *[numTables]table) (int32, *day, error) {
	if len(data) < len(dayMagic) || string(data[:len(dayMagic)]) != dayMagic && string(data[:len(dayMagic)]) != dayMagic1 {
		return 0, nil, errCorrupt
	}
	sketches := string(data[:len(dayMagic)]) == dayMagic
	d := newDecoder(data[len(dayMagic):])
	dn := int32(d.Varint())
	first, last := d.Varint(), d.Varint()
	for t := range numTables {
		n := d.Count(1)
		d.local[t] = make([]int32, n)
		for i := range n {
			name := d.Str()
			if d.Err != nil {
				break
			}
			d.local[t][i] = names[t].id(name)
		}
	}
	out := &day{first: first, last: last}
	nh := d.Count(1)
	for range nh {
		i := d.Uvarint()
		if i >= 24 {
			d.Fail(nil)
			break
		}
		h := &hour{}
		decodeHour(d, h)
		if d.Err != nil {
			break
		}
		out.hours[i] = h
	}
	nu := d.Count(1)
	for range nu {
		id := d.ref(tUser)
		u := &userDay{tier: d.ref(tTier)}
		u.calls, u.cost, u.tokens = d.num(), d.num(), d.num()
		k := d.Count(1)
		for range k {
			s := d.ref(tService)
			v := d.num()
			if d.Err != nil {
				break
			}
			addAt(&u.byService, s, v)
		}
		if d.Err != nil {
			break
		}
		out.users = grow(out.users, id)
		out.users[id] = u
	}
	if sketches && d.Err == nil {
		for range d.Count(2) {
			s := d.ref(tService)
			if d.Err != nil {
				break
			}
			x, rest, err := window.DecodeDistinct(d.B)
			if err != nil {
				d.Fail(nil)
				break
			}
			d.B = rest
			if old := out.distinctOf(s); !old.Empty() {
				old.Merge(x)
			} else {
				out.distinct[s] = x
			}
		}
	}
	if d.Err != nil || len(d.B) != 0 {
		return 0, nil, errCorrupt
	}
	return dn, out, nil
}

func decodeHour(d *decoder, h *hour) {
	for range d.Count(1) {
		id := d.ref(tService)
		s := &serviceAgg{}
		for _, p := range [...]*float64{&s.calls, &s.errors, &s.timeouts, &s.duplicates, &s.cost, &s.perCall, &s.egress,
			&s.bytes, &s.latSum, &s.latCount} {
			*p = d.num()
		}
		s.latency = window.Sketch{Zero: d.Uvarint(), First: int(d.Varint())}
		if n := d.Count(1); n > 0 {
			s.latency.Counts = make([]uint64, n)
			for i := range s.latency.Counts {
				s.latency.Counts[i] = d.Uvarint()
			}
		}
		if d.Err != nil {
			return
		}
		h.services = grow(h.services, id)
		h.services[id] = s
	}
	for range d.Count(1) {
		id := d.ref(tRoute)
		rt := &routeAgg{calls: d.num(), errors: d.num(), latSum: d.num(), latCount: d.num()}
		if d.Err != nil {
			return
		}
		h.routes = grow(h.routes, id)
		h.routes[id] = rt
	}
	for range d.Count(1) {
		id := d.ref(tModel)
		m := &modelAgg{calls: d.num(), failures: d.num()}
		for i := range m.tokens {
			m.tokens[i] = d.num()
		}
		m.cost = d.num()
		for i := range m.prompts {
			m.prompts[i] = d.num()
		}
		if d.Err != nil {
			return
		}
		h.models = grow(h.models, id)
		h.models[id] = m
	}
	for range d.Count(1) {
		id := d.ref(tTier)
		t := &tierAgg{calls: d.num(), cost: d.num()}
		if d.Err != nil {
			return
		}
		h.tiers = grow(h.tiers, id)
		h.tiers[id] = t
	}
	for range d.Count(1) {
		id := d.ref(tReason)
		v := d.num()
		if d.Err != nil {
			return
		}
		addAt(&h.unpriced, id, v)
	}
}
