package wire

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// What encoding/binary appends reads back; a short or lying input fails
// once, with the reader's error, and later reads return zero.
func TestReader(t *testing.T) {
	var b []byte
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -7)
	b = append(b, 9)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(2.5))
	b = binary.AppendUvarint(b, 3)
	b = append(b, "abc"...)
	b = binary.AppendUvarint(b, 2) // a count of two 1-byte elements
	b = append(b, 1, 2)
	corrupt := errors.New("corrupt")
	r := NewReader(b, corrupt)
	if r.Uvarint() != 300 || r.Varint() != -7 || r.Byte() != 9 || r.Float64() != 2.5 || r.Str() != "abc" || r.Count(1) != 2 {
		t.Fatalf("read back wrong: %v", r.Err)
	}
	if r.Byte() != 1 || r.Byte() != 2 || r.Err != nil || len(r.B) != 0 {
		t.Fatalf("rest %v, err %v", r.B, r.Err)
	}
	if r.Byte() != 0 || !errors.Is(r.Err, corrupt) {
		t.Errorf("a read past the end: %v", r.Err)
	}
	// A count the bytes cannot hold, a string longer than the data.
	r = NewReader(binary.AppendUvarint(nil, 1<<40), corrupt)
	if r.Count(8) != 0 || r.Err == nil {
		t.Errorf("a count of 2^40: %v", r.Err)
	}
	r = NewReader(append(binary.AppendUvarint(nil, 10), "ab"...), corrupt)
	if r.Str() != "" || r.Err == nil || r.Uvarint() != 0 {
		t.Errorf("a string past the end: %v", r.Err)
	}
	// The first failure sticks.
	other := errors.New("other")
	r = NewReader(nil, corrupt)
	r.Fail(other)
	r.Uint64()
	if r.Err != other {
		t.Errorf("err %v, want the first", r.Err)
	}
}
