package dedup

import (
	"strconv"
	"testing"
	"time"
)

func TestWindowCountsRepeatsWithinWindow(t *testing.T) {
	w := New(Config{Window: time.Minute, MaxKeys: 100})
	t0 := time.Date(2025, 10, 24, 12, 0, 0, 0, time.UTC)
	steps := []struct {
		scope, key string
		at         time.Duration
		dup        bool
	}{
		{"llm", "a", 0, false},
		{"llm", "a", 30 * time.Second, true},
		{"embeddings", "a", 31 * time.Second, false}, // another scope
		{"llm", "a", 90 * time.Second, true},         // 60 s after the previous sighting
		{"llm", "a", 151 * time.Second, false},       // 61 s after it
		{"llm", "b", 152 * time.Second, false},
		{"llm", "b", 152 * time.Second, true},
	}
	for i, s := range steps {
		if got := w.Seen(s.scope, []byte(s.key), t0.Add(s.at)); got != s.dup {
			t.Errorf("step %d (%s/%s at %s): dup=%v, want %v", i, s.scope, s.key, s.at, got, s.dup)
		}
	}
	// Everything before 152s-60s has expired except the latest sightings.
	if w.Len() != 3 {
		t.Errorf("Len = %d, want 3", w.Len())
	}
}

func TestWindowBoundedMemory(t *testing.T) {
	w := New(Config{Window: time.Hour, MaxKeys: 5000})
	t0 := time.Unix(1761264000, 0)
	for i := 0; i < 20000; i++ {
		w.Seen("llm", []byte(strconv.Itoa(i)), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if w.Len() != 5000 || len(w.last) != 5000 || w.Evicted != 15000 {
		t.Fatalf("Len=%d keys=%d evicted=%d, want 5000/5000/15000", w.Len(), len(w.last), w.Evicted)
	}
	// The newest keys are still remembered, the oldest are gone.
	if !w.Seen("llm", []byte("19999"), t0.Add(20*time.Second)) {
		t.Error("newest key forgotten")
	}
	if w.Seen("llm", []byte("0"), t0.Add(20*time.Second)) {
		t.Error("evicted key still remembered")
	}
}

func BenchmarkSeen(b *testing.B) {
	w := New(DefaultConfig())
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = []byte("req-" + strconv.Itoa(i))
	}
	t0 := time.Unix(1761264000, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Seen("llm", keys[i%len(keys)], t0.Add(time.Duration(i)*time.Millisecond))
		i++
	}
}
