package logparse

import (
	"encoding/binary"
	"math/bits"
	"time"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting in values we skip; deeper lines are rejected.
const maxJSONDepth = 64

type jsonKey struct {
	field Field
	rank  uint8 // position in the field's alias list: lower wins
}

// jsonParser is a non-reflective scanner for one JSON object per line. It
// looks at the keys it knows and skips the rest without decoding them.
type jsonParser struct {
	keys    map[string]jsonKey
	loc     *time.Location
	scratch []byte           // unescaped strings of the current line
	rank    [numFields]uint8 // best alias rank seen per field on this line

	// Lines of one log share their key order; remembering the keys of the
	// last line by position saves most map lookups.
	shape [maxShapeKeys]shapeSlot
}

const maxShapeKeys = 32

type shapeSlot struct {
	key   [32]byte
	n     int // key length; 0 = empty slot
	res   jsonKey
	known bool
}

// lookup resolves a key, consulting the slot for its position first.
func (p *jsonParser) lookup(pos int, key []byte) (jsonKey, bool) {
	if pos < maxShapeKeys {
		s := &p.shape[pos]
		if s.n == len(key) && string(s.key[:s.n]) == string(key) {
			return s.res, s.known
		}
		k, ok := p.keys[string(key)]
		if len(key) > 0 && len(key) <= len(s.key) {
			s.n = copy(s.key[:], key)
			s.res, s.known = k, ok
		}
		return k, ok
	}
	k, ok := p.keys[string(key)]
	return k, ok
}

func newJSONParser(keys [numFields][]string, loc *time.Location) (*jsonParser, error) {
	p := &jsonParser{keys: make(map[string]jsonKey), loc: loc, scratch: make([]byte, 0, 4096)}
	for f, ks := range keys {
		for r, k := range ks {
			if _, dup := p.keys[k]; dup {
				continue // the first field to claim a key keeps it
			}
			p.keys[k] = jsonKey{field: Field(f), rank: uint8(min(r, 254))}
		}
	}
	return p, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// Parse implements Parser.
func (p *jsonParser) Parse(line []byte, rec *Record) error {
	*rec = Record{}
	p.scratch = p.scratch[:0]
	for f := range p.rank {
		p.rank[f] = 255
	}
	i := skipSpace(line, 0)
	if i == len(line) {
		return errEmpty
	}
	if line[i] != '{' {
		return errNotObject
	}
	i = skipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for pos := 0; ; pos++ {
			if i >= len(line) || line[i] != '"' {
				return errJSON
			}
			key, next, err := p.readString(line, i)
			if err != nil {
				return err
			}
			i = skipSpace(line, next)
			if i >= len(line) || line[i] != ':' {
				return errJSON
			}
			i = skipSpace(line, i+1)
			if i >= len(line) {
				return errJSON
			}
			if k, ok := p.lookup(pos, key); ok && k.rank < p.rank[k.field] {
				p.rank[k.field] = k.rank
				i, err = p.readField(line, i, k.field, rec)
			} else {
				i, err = skipValue(line, i)
			}
			if err != nil {
				return err
			}
			i = skipSpace(line, i)
			if i >= len(line) {
				return errJSON
			}
			if line[i] == '}' {
				i++
				break
			}
			if line[i] != ',' {
				return errJSON
			}
			i = skipSpace(line, i+1)
		}
	}
	if skipSpace(line, i) != len(line) {
		return errTrailing
	}
	return rec.validate()
}

// readField decodes the value at line[i] into field f of rec.
func (p *jsonParser) readField(line []byte, i int, f Field, rec *Record) (int, error) {
	var raw []byte
	isString := false
	switch c := line[i]; {
	case c == '"':
		v, next, err := p.readString(line, i)
		if err != nil {
			return 0, err
		}
		raw, i, isString = v, next, true
	case c == 'n':
		if !hasLiteral(line, i, "null") {
			return 0, errJSON
		}
		return i + 4, nil // null: the field is absent
	case c == '-' || (c >= '0' && c <= '9'):
		start := i
		for i < len(line) && isNumberByte(line[i]) {
			i++
		}
		raw = line[start:i]
	default:
		return 0, errNumber // objects, arrays and booleans carry no usable value here
	}
	if f != FieldTimestamp {
		return i, rec.setValue(f, raw)
	}
	var t time.Time
	var ok bool
	if isString {
		t, ok = parseTime(raw, p.loc)
	} else if v, okf := parseFloat(raw); okf {
		t, ok = epochTime(v)
	}
	if !ok {
		return 0, errTime
	}
	rec.Time = t
	return i, nil
}

func isNumberByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// readString reads the string starting at the quote b[i]. Strings without
// escapes are returned as a sub-slice of b; others are unescaped into scratch.
func (p *jsonParser) readString(b []byte, i int) ([]byte, int, error) {
	start := i + 1
	j := findSpecial(b, start)
	if j < 0 || b[j] < 0x20 {
		return nil, 0, errJSON
	}
	if b[j] == '\\' {
		return p.unescape(b, start, j)
	}
	return b[start:j], j + 1, nil
}

// findSpecial returns the index of the first byte at or after from that is a
// quote, a backslash or a control character, or -1. It tests eight bytes at a
// time; the lowest flagged byte of a word is exact.
func findSpecial(b []byte, from int) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := from
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q := w ^ ('"' * lo)
		s := w ^ ('\\' * lo)
		m := ((q - lo) &^ q) | ((s - lo) &^ s) | ((w - 0x20*lo) &^ w)
		if m &= hi; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return -1
}

// unescape continues readString from the first backslash at b[j].
func (p *jsonParser) unescape(b []byte, start, j int) ([]byte, int, error) {
	out := len(p.scratch)
	p.scratch = append(p.scratch, b[start:j]...)
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			return p.scratch[out:], j + 1, nil
		case c < 0x20:
			return nil, 0, errJSON
		case c != '\\':
			p.scratch = append(p.scratch, c)
			j++
			continue
		}
		if j+1 >= len(b) {
			return nil, 0, errJSON
		}
		switch e := b[j+1]; e {
		case '"', '\\', '/':
			p.scratch = append(p.scratch, e)
		case 'b':
			p.scratch = append(p.scratch, '\b')
		case 'f':
			p.scratch = append(p.scratch, '\f')
		case 'n':
			p.scratch = append(p.scratch, '\n')
		case 'r':
			p.scratch = append(p.scratch, '\r')
		case 't':
			p.scratch = append(p.scratch, '\t')
		case 'u':
			r, ok := hex4(b, j+2)
			if !ok {
				return nil, 0, errJSON
			}
			j += 6
			if utf16IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if j+1 < len(b) && b[j] == '\\' && b[j+1] == 'u' {
					r2, ok2 = hex4(b, j+2)
				}
				if ok2 && r >= 0xd800 && r < 0xdc00 && r2 >= 0xdc00 && r2 < 0xe000 {
					r = (r-0xd800)<<10 + (r2 - 0xdc00) + 0x10000
					j += 6
				} else {
					r = utf8.RuneError
				}
			}
			p.scratch = utf8.AppendRune(p.scratch, r)
			continue
		default:
			return nil, 0, errJSON
		}
		j += 2
	}
	return nil, 0, errJSON
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r < 0xe000 }

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
