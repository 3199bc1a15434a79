package heavy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func labelledKeys[T any](t *Tracker[T]) []string {
	var keys []string
	t.EachLabelled(func(e *Entry[T]) { keys = append(keys, e.Key) })
	slices.Sort(keys)
	return keys
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// The first K keys take the slots at once; the heavy keys that come after
// them take the slots of the light ones at the next rebalance.
func TestHeavyKeysArrivingLastTakeTheSlots(t *testing.T) {
	tr := New[struct{}](10, 100)
	for _, k := range keys("light", 50) {
		tr.Add(k, 1)
	}
	if got := labelledKeys(tr); !slices.Equal(got, keys("light", 10)) {
		t.Fatalf("first come: %v", got)
	}
	for range 30 {
		for _, k := range keys("heavy", 10) {
			tr.Add(k, 1)
		}
	}
	swaps := tr.Rebalance(1.25, 2)
	if got := labelledKeys(tr); !slices.Equal(got, keys("heavy", 10)) {
		t.Fatalf("after the rebalance: %v", got)
	}
	if len(swaps) != 10 {
		t.Errorf("%d swaps, want 10", len(swaps))
	}
	for _, s := range swaps {
		if s.Out == nil || s.In == nil || s.In.Slot != s.Slot || s.Out.Labelled() {
			t.Errorf("swap %+v", s)
		}
	}
	if again := tr.Rebalance(1.25, 2); len(again) != 0 {
		t.Errorf("a second rebalance changed %d slots", len(again))
	}
}

// Two keys of the same traffic on either side of the boundary do not take
// turns: a slot changes hands only for a clear lead.
func TestNoFlapping(t *testing.T) {
	tr := New[struct{}](1, 10)
	tr.Add("a", 10)
	tr.Add("b", 10)
	swaps := 0
	rng := rand.New(rand.NewPCG(1, 1))
	for range 1000 {
		// Both get the same traffic in expectation, in random order.
		for range 10 {
			if rng.IntN(2) == 0 {
				tr.Add("a", 1)
			} else {
				tr.Add("b", 1)
			}
		}
		swaps += len(tr.Rebalance(1.25, 2))
	}
	if swaps > 1 {
		t.Errorf("the slot changed hands %d times between keys of equal traffic", swaps)
	}
	// A clear lead does take it.
	other := "a"
	if labelledKeys(tr)[0] == "a" {
		other = "b"
	}
	tr.Add(other, 10000)
	if len(tr.Rebalance(1.25, 2)) != 1 || labelledKeys(tr)[0] != other {
		t.Errorf("a key with twice the traffic did not take the slot: %v", labelledKeys(tr))
	}
}

// Space-Saving's guarantees on a skewed stream: a tracked candidate's
// count bounds its true count from above and Count-Err from below, and
// every key with more than N/c of the traffic is tracked.
func TestSpaceSavingBounds(t *testing.T) {
	const c = 200
	tr := New[struct{}](0, c)
	rng := rand.New(rand.NewPCG(2, 2))
	zipf := rand.NewZipf(rng, 1.1, 1, 100000)
	truth := map[string]float64{}
	n := 0
	for range 200000 {
		k := fmt.Sprint(zipf.Uint64())
		tr.Add(k, 1)
		truth[k]++
		n++
	}
	tracked := map[string]bool{}
	tr.Each(func(e *Entry[struct{}]) {
		tracked[e.Key] = true
		if tv := truth[e.Key]; !(e.Count-e.Err <= tv && tv <= e.Count) {
			t.Errorf("%s: true %v outside [%v, %v]", e.Key, tv, e.Count-e.Err, e.Count)
		}
	})
	for k, v := range truth {
		if v > float64(n)/c && !tracked[k] {
			t.Errorf("%s has %v of %d (more than N/c = %v) but is not tracked", k, v, n, float64(n)/c)
		}
	}
}

// The tracker comes back from Each and Restore as it was: the same slots,
// counts and candidates; slots beyond a smaller maximum become candidates.
func TestRestore(t *testing.T) {
	tr := New[int](5, 20)
	rng := rand.New(rand.NewPCG(3, 3))
	for range 2000 {
		tr.Add(fmt.Sprint(rng.IntN(60)), float64(1+rng.IntN(3)))
	}
	tr.Rebalance(1.25, 2)
	type saved struct {
		key        string
		count, err float64
		slot       int
	}
	var all []saved
	tr.Each(func(e *Entry[int]) { all = append(all, saved{e.Key, e.Count, e.Err, e.Slot}) })
	back := New[int](5, 20)
	for _, s := range all {
		back.Restore(&Entry[int]{Key: s.key, Count: s.count, Err: s.err, Slot: s.slot})
	}
	back.FinishRestore()
	var again []saved
	back.Each(func(e *Entry[int]) { again = append(again, saved{e.Key, e.Count, e.Err, e.Slot}) })
	sortSaved := func(s []saved) {
		slices.SortFunc(s, func(a, b saved) int {
			if a.key < b.key {
				return -1
			}
			if a.key > b.key {
				return 1
			}
			return 0
		})
	}
	sortSaved(all)
	sortSaved(again)
	if !slices.Equal(all, again) {
		t.Errorf("restored %v\nwant %v", again, all)
	}
	if len(back.Rebalance(1.25, 2)) != 0 {
		t.Error("the restored tracker changed slots at once")
	}
	small := New[int](2, 20)
	for _, s := range all {
		small.Restore(&Entry[int]{Key: s.key, Count: s.count, Err: s.err, Slot: s.slot})
	}
	small.FinishRestore()
	if l, _ := small.Len(); l > 2 {
		t.Errorf("%d labelled with 2 slots", l)
	}
}

// A smaller maximum frees the weakest slots; decay keeps the order.
func TestResizeAndDecay(t *testing.T) {
	tr := New[struct{}](4, 10)
	for i, k := range []string{"a", "b", "c", "d"} {
		tr.Add(k, float64(10*(i+1)))
	}
	forgotten := 0
	tr.OnForget = func(*Entry[struct{}]) { forgotten++ }
	tr.Resize(2, 10)
	swaps := tr.Rebalance(1.25, 2)
	if got := labelledKeys(tr); !slices.Equal(got, []string{"c", "d"}) || len(swaps) != 2 {
		t.Errorf("after resizing to 2: %v (%d swaps)", got, len(swaps))
	}
	tr.Decay(0.5)
	if e := tr.Get("d"); e.Count != 20 {
		t.Errorf("decayed count %v, want 20", e.Count)
	}
	if e := tr.Get("a"); e == nil || e.Labelled() {
		t.Errorf("a demoted key is a candidate: %+v", e)
	}
	// A full summary forgets its smallest for a newcomer, and says so.
	for i := range 20 {
		tr.Add(fmt.Sprint("n", i), 1)
	}
	if forgotten == 0 {
		t.Errorf("forgotten %d", forgotten)
	}
}
