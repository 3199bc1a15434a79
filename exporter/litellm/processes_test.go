package litellm

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// scrape parses an exposition of spend series: start is its
// process_start_time_seconds (0: none), each entry user=value.
func scrape(t *testing.T, start float64, spend ...string) *Snapshot {
	t.Helper()
	var b strings.Builder
	if start != 0 {
		fmt.Fprintf(&b, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %v\n", start)
	}
	b.WriteString("# TYPE litellm_spend_metric_total counter\n")
	for _, s := range spend {
		user, value, _ := strings.Cut(s, "=")
		fmt.Fprintf(&b, "litellm_spend_metric_total{end_user=%q,requested_model=\"m\"} %s\n", user, value)
	}
	snap, err := Parse(strings.NewReader(b.String()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// spendOf is what an applied scrape adds, by user.
func spendOf(a Applied) string {
	out := map[string]float64{}
	for k, v := range a.Usage.Resolve().Spend {
		out[k.User] += v
	}
	return fmt.Sprint(out)
}

var t0 = time.Date(2025, 11, 15, 12, 0, 0, 0, time.UTC)

func TestProcessesIncrements(t *testing.T) {
	cases := []struct {
		name            string
		scrapes         []*Snapshot
		endpoints       []string // default "e"
		want            []string
		newProc, resets int
	}{
		{"first scrape counts everything, growth counts the difference, a repeat nothing",
			[]*Snapshot{scrape(t, 100, "a=5", "b=1"), scrape(t, 100, "a=7", "b=1"), scrape(t, 100, "a=7", "b=1")}, nil,
			[]string{"map[a:5 b:1]", "map[a:2]", "map[]"}, 0, 0},
		{"a restart (new start time) counts from zero",
			[]*Snapshot{scrape(t, 100, "a=5"), scrape(t, 200, "a=2")}, nil,
			[]string{"map[a:5]", "map[a:2]"}, 1, 0},
		{"two replicas answering in turn: each counted once, from its own baseline",
			[]*Snapshot{scrape(t, 100, "a=5"), scrape(t, 300, "a=40"), scrape(t, 100, "a=6"), scrape(t, 300, "a=41"),
				scrape(t, 100, "a=6")}, nil,
			[]string{"map[a:5]", "map[a:40]", "map[a:1]", "map[a:1]", "map[]"}, 1, 0},
		{"a series that drops in the same process is a reset: its value is new",
			[]*Snapshot{scrape(t, 100, "a=5", "b=9"), scrape(t, 100, "a=3", "b=10")}, nil,
			[]string{"map[a:5 b:9]", "map[a:3 b:1]"}, 0, 1},
		{"without a start time a drop is a reset too",
			[]*Snapshot{scrape(t, 0, "a=5"), scrape(t, 0, "a=3")}, nil,
			[]string{"map[a:5]", "map[a:3]"}, 0, 1},
		{"a series LiteLLM removed and recreated starts from zero",
			[]*Snapshot{scrape(t, 100, "a=5", "b=9"), scrape(t, 100, "a=5"), scrape(t, 100, "a=5", "b=2")}, nil,
			[]string{"map[a:5 b:9]", "map[]", "map[b:2]"}, 0, 0},
		{"summation rounding is no reset",
			[]*Snapshot{scrape(t, 0, "a=0.30000000000000004"), scrape(t, 0, "a=0.3")}, nil,
			[]string{"map[a:0.30000000000000004]", "map[]"}, 0, 0},
		{"without start times, endpoints are the processes",
			[]*Snapshot{scrape(t, 0, "a=5"), scrape(t, 0, "a=40"), scrape(t, 0, "a=6")}, []string{"x", "y", "x"},
			[]string{"map[a:5]", "map[a:40]", "map[a:1]"}, 1, 0},
		{"one process seen through two endpoints (IPv4 and IPv6): counted once",
			[]*Snapshot{scrape(t, 100, "a=5"), scrape(t, 100, "a=5"), scrape(t, 100, "a=6")}, []string{"x", "y", "x"},
			[]string{"map[a:5]", "map[]", "map[a:1]"}, 0, 0},
	}
	for _, tc := range cases {
		p := NewProcesses(time.Hour)
		newProc, resets := 0, 0
		for i, s := range tc.scrapes {
			ep := "e"
			if tc.endpoints != nil {
				ep = tc.endpoints[i]
			}
			a := p.Apply("t", ep, s, t0)
			if got := spendOf(a); got != tc.want[i] {
				t.Errorf("%s: scrape %d adds %s, want %s", tc.name, i, got, tc.want[i])
			}
			if a.First != (i == 0) {
				t.Errorf("%s: scrape %d First=%v", tc.name, i, a.First)
			}
			if a.NewProcess {
				newProc++
			}
			resets += a.Resets
		}
		if newProc != tc.newProc || resets != tc.resets {
			t.Errorf("%s: %d new processes, %d resets; want %d, %d", tc.name, newProc, resets, tc.newProc, tc.resets)
		}
	}
}

// A scrape that changes no baseline says so: the exporter then has nothing
// new to write to its state file.
func TestProcessesChanged(t *testing.T) {
	p := NewProcesses(time.Hour)
	for i, tc := range []struct {
		snap *Snapshot
		at   time.Time
		want bool
	}{
		{scrape(t, 100, "a=5", "b=1"), t0, true},                    // the first
		{scrape(t, 100, "a=5", "b=1"), t0.Add(time.Minute), false},  // the same
		{scrape(t, 100, "a=6", "b=1"), t0.Add(time.Minute), true},   // a value
		{scrape(t, 100, "a=6"), t0.Add(time.Minute), true},          // a series gone
		{scrape(t, 100, "a=6", "c=0"), t0.Add(time.Minute), true},   // a series new
		{scrape(t, 200, "a=6", "c=0"), t0.Add(time.Minute), true},   // another process
		{scrape(t, 200, "a=6", "c=0"), t0.Add(2 * time.Hour), true}, // the first forgotten
		{scrape(t, 200, "a=6", "c=0"), t0.Add(2 * time.Hour), false},
	} {
		if got := p.Apply("t", "e", tc.snap, tc.at).Changed; got != tc.want {
			t.Errorf("scrape %d: Changed %v, want %v", i, got, tc.want)
		}
	}
}

// Targets keep their processes apart: the same start time on two targets
// is two processes.
func TestProcessesPerTarget(t *testing.T) {
	p := NewProcesses(time.Hour)
	p.Apply("a", "e", scrape(t, 100, "u=5"), t0)
	if got := spendOf(p.Apply("b", "e", scrape(t, 100, "u=7"), t0)); got != "map[u:7]" {
		t.Errorf("second target adds %s", got)
	}
	if p.Count() != 2 {
		t.Errorf("%d processes", p.Count())
	}
}

// A process not seen for the retention is forgotten; one seen within it
// counts on from its baseline.
func TestProcessesRetention(t *testing.T) {
	p := NewProcesses(time.Hour)
	p.Apply("t", "e", scrape(t, 100, "a=5"), t0)
	p.Apply("t", "e", scrape(t, 200, "a=1"), t0.Add(30*time.Minute))
	if got := spendOf(p.Apply("t", "e", scrape(t, 100, "a=6"), t0.Add(50*time.Minute))); got != "map[a:1]" {
		t.Errorf("process back within the retention adds %s", got)
	}
	p.Apply("t", "e", scrape(t, 200, "a=2"), t0.Add(3*time.Hour))
	if p.Count() != 1 {
		t.Errorf("%d processes kept after the retention, want 1", p.Count())
	}
}

// After an upgrade from summed counters, a target's first scrape is a
// baseline only.
func TestProcessesRebaseline(t *testing.T) {
	p := NewProcesses(time.Hour)
	p.Rebaseline()
	a := p.Apply("t", "e", scrape(t, 100, "a=5"), t0)
	if !a.Usage.Empty() || a.First {
		t.Errorf("rebaseline scrape adds %s, First=%v", spendOf(a), a.First)
	}
	if got := spendOf(p.Apply("t", "e", scrape(t, 100, "a=8"), t0)); got != "map[a:3]" {
		t.Errorf("after the baseline: %s", got)
	}
}

func TestProcessesEncoding(t *testing.T) {
	p := NewProcesses(time.Hour)
	p.Apply("t", "e", scrape(t, 100, "a=5", "b=0.1"), t0)
	p.Apply("t", "x", scrape(t, 0, "a=7"), t0)
	p.Apply("dns+http://litellm:4000", "http://10.0.0.1:4000/metrics", scrape(t, 300, "c=1e-9"), t0)
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	q := NewProcesses(time.Hour)
	if err := q.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	again, _ := q.MarshalBinary()
	if string(again) != string(data) || q.Count() != 3 {
		t.Fatalf("round trip differs (%d processes)", q.Count())
	}
	// The restored baselines count on: only the increments.
	if got := spendOf(q.Apply("t", "e", scrape(t, 100, "a=6", "b=0.1"), t0)); got != "map[a:1]" {
		t.Errorf("after restore: %s", got)
	}
	for n := range len(data) {
		if err := NewProcesses(0).UnmarshalBinary(data[:n]); err == nil {
			t.Fatalf("truncated at %d of %d: accepted", n, len(data))
		}
	}
}

// FuzzProcessesUnmarshal: any bytes are baselines or an error, never a panic.
func FuzzProcessesUnmarshal(f *testing.F) {
	p := NewProcesses(0)
	p.Apply("t", "e", exampleSnapshot(), t0)
	data, _ := p.MarshalBinary()
	f.Add(data)
	f.Add([]byte("LLP1\x01\x01t\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		q := NewProcesses(0)
		if q.UnmarshalBinary(data) == nil {
			if _, err := q.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func exampleSnapshot() *Snapshot {
	s, err := Parse(strings.NewReader(string(exposition(2, 3))), Options{})
	if err != nil {
		panic(err)
	}
	return s
}
