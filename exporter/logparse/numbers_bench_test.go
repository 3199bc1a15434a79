package logparse

import (
	"strconv"
	"testing"
	"time"
)

// The hand-written number and time parsers against the standard library
// on the values of a gateway line. They stay only while they pay.

var (
	benchInt    = []byte("2557")
	benchFloat  = []byte("1716.25")
	benchISO    = []byte("2025-10-24T00:00:00.004Z")
	benchNginxT = []byte("24/Oct/2025:00:00:00 +0000")
	sinkI       int64
	sinkF       float64
	sinkT       time.Time
)

func BenchmarkNumbers(b *testing.B) {
	b.Run("int/hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkI, _ = parseInt(benchInt)
		}
	})
	b.Run("int/strconv", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkI, _ = strconv.ParseInt(string(benchInt), 10, 64)
		}
	})
	b.Run("float/hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkF, _ = parseFloat(benchFloat)
		}
	})
	b.Run("float/strconv", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkF, _ = strconv.ParseFloat(string(benchFloat), 64)
		}
	})
	b.Run("iso8601/hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkT, _ = parseISO8601(benchISO, time.UTC)
		}
	})
	b.Run("iso8601/time.Parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkT, _ = time.Parse(time.RFC3339Nano, string(benchISO))
		}
	})
	b.Run("nginx/hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkT, _ = parseNginxTime(benchNginxT)
		}
	})
	b.Run("nginx/time.Parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkT, _ = time.Parse("02/Jan/2006:15:04:05 -0700", string(benchNginxT))
		}
	})
}
