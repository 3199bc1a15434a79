// Package wire reads the compact binary encodings of the state file's parts
// (series, rollup days, the users' tracker, LiteLLM's baselines): varints,
// little-endian 64-bit words and length-prefixed strings, appended with
// encoding/binary. A Reader never panics and never allocates more than the
// data can hold: the first read past the end, or a count the bytes left
// cannot hold, fails it, and every read after that returns zero.
package wire

import (
	"encoding/binary"
	"math"
)

// Reader reads from B; Err is the first failure.
type Reader struct {
	B   []byte
	Err error
	// corrupt is the error a failed read sets.
	corrupt error
}

// NewReader reads b, failing with corrupt.
func NewReader(b []byte, corrupt error) Reader { return Reader{B: b, corrupt: corrupt} }

// Fail records err (the reader's own error when nil), unless a failure is
// recorded already, and stops reading.
func (r *Reader) Fail(err error) {
	if err == nil {
		err = r.corrupt
	}
	if r.Err == nil {
		r.Err = err
	}
	r.B = nil
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.B)
	if n <= 0 {
		r.Fail(nil)
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.B)
	if n <= 0 {
		r.Fail(nil)
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Count reads a number of elements that take at least size bytes each:
// more than the bytes left can hold is corrupt (and must not be allocated).
func (r *Reader) Count(size int) int {
	n := r.Uvarint()
	if n > uint64(len(r.B)/size) {
		r.Fail(nil)
		return 0
	}
	return int(n)
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.B) < 1 {
		r.Fail(nil)
		return 0
	}
	c := r.B[0]
	r.B = r.B[1:]
	return c
}

// Uint64 reads a little-endian 64-bit word.
func (r *Reader) Uint64() uint64 {
	if len(r.B) < 8 {
		r.Fail(nil)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.B)
	r.B = r.B[8:]
	return v
}

// Float64 reads a float64's bits as a little-endian word.
func (r *Reader) Float64() float64 { return math.Float64frombits(r.Uint64()) }

// Str reads a string prefixed by its length as an unsigned varint.
func (r *Reader) Str() string {
	n := r.Uvarint()
	if n > uint64(len(r.B)) {
		r.Fail(nil)
		return ""
	}
	s := string(r.B[:n])
	r.B = r.B[n:]
	return s
}

// AppendStr appends s as Str reads it.
func AppendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// AppendFloat64 appends v as Float64 reads it.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}
