package rollup

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/usage-exporter/usage-exporter/internal/window"
)

// memFiles are Files in memory.
type memFiles struct {
	mu    sync.Mutex
	files map[string][]byte
}

func newMemFiles() *memFiles { return &memFiles{files: map[string][]byte{}} }

func (m *memFiles) WriteBytes(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = slices.Clone(data)
	return nil
}

func (m *memFiles) ReadBytes(name string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	return b, ok, nil
}

func (m *memFiles) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, name)
	return nil
}

func (m *memFiles) List(prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.files {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

var day0 = time.Date(2025, 10, 20, 0, 0, 0, 0, time.UTC)

// feed writes a line: service llm or search, a user, at day0 plus d.
func feed(r *Rollups, at time.Duration, service, user string, cost float64) {
	l := Line{Time: day0.Add(at).UnixMilli(), Service: r.ServiceID(service), Route: r.RouteID(service, "/"+service),
		Tier: r.TierID("pro"), User: r.UserID(user), Model: -1, Unpriced: -1, Cost: cost, HasDuration: true,
		Duration: 0.25, Bytes: 100}
	if user != window.AnonymousUser {
		l.UserHash = xxhash.Sum64String(user)
	}
	if service == "llm" {
		l.Model = r.ModelID(service, "gpt-4")
		l.HasTokens, l.Tokens, l.Prompt, l.UserTokens = true, [5]float64{400, 100}, 400, 500
	}
	r.Add(&l)
}

// saved runs a checkpoint through its encoding, as the state file does.
func saved(t *testing.T, r *Rollups) *Saved {
	t.Helper()
	s := r.Checkpoint()
	back, err := DecodeSaved(s.Encode())
	if err != nil {
		t.Fatal(err)
	}
	back.Obsolete = s.Obsolete
	r.Saved(back)
	return back
}

func TestWindowsSealingAndRetention(t *testing.T) {
	files := newMemFiles()
	r := New(3, files)
	// Day 0: 10 llm calls of alice at 9h; day 1: 5 searches of bob at 14h
	// and an anonymous one; day 2: 2 llm calls of alice at 23h.
	for range 10 {
		feed(r, 9*time.Hour, "llm", "alice", 0.5)
	}
	for range 5 {
		feed(r, 24*time.Hour+14*time.Hour, "search", "bob", 0.001)
	}
	feed(r, 24*time.Hour+15*time.Hour, "search", "__anonymous__", 0.001)
	saved(t, r)
	if names, _ := files.List(FilePrefix); len(names) != 1 || names[0] != fileName(int32(day0.Unix()/86400), 1) {
		t.Fatalf("day 0 not sealed (the newest line is a day and 15 h later): %v", names)
	}
	for range 2 {
		feed(r, 48*time.Hour+23*time.Hour, "llm", "alice", 0.5)
	}
	saved(t, r)
	w, err := r.Window(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Start.Equal(day0) || !w.End.Equal(day0.Add(72*time.Hour)) {
		t.Errorf("window %s - %s", w.Start, w.End)
	}
	llm, search := w.Services["llm"], w.Services["search"]
	if llm.Calls != 12 || llm.Cost != 6 || search.Calls != 6 || math.Abs(search.Cost-0.006) > 1e-12 || search.UniqueUsers != 1 {
		t.Errorf("services llm %+v search %+v", llm, search)
	}
	if w.Hourly[9] != 10 || w.Hourly[14] != 5 || w.Hourly[23] != 2 || w.HourlyByService["search"][15] != 1 {
		t.Errorf("hourly %v by service %v", w.Hourly, w.HourlyByService)
	}
	if fmt := fmt.Sprint(w.Daily); fmt != "[{2025-10-20 10 5} {2025-10-21 6 0.006} {2025-10-22 2 1}]" {
		t.Errorf("daily %s", fmt)
	}
	if a := w.Users["alice"]; a == nil || a.Calls != 12 || a.Tokens != 6000 || a.ByService["llm"] != 12 || a.Tier != "pro" {
		t.Errorf("alice %+v", a)
	}
	if m := w.Models["gpt-4"]; m == nil || m.Calls != 12 || m.Tokens["input"] != 4800 || m.Prompts.Simple != 12 || m.CostByService["llm"] != 6 {
		t.Errorf("gpt-4 %+v", m)
	}
	if q := llm.Latency.Quantile(0.95); math.Abs(q-0.25)/0.25 > 0.045 {
		t.Errorf("p95 %v of 0.25 s", q)
	}
	// A window of one day is the newest line's day.
	if w1, _ := r.Window(context.Background(), 1); w1.Services["llm"].Calls != 2 || w1.Services["search"] != nil {
		t.Errorf("one day: %+v", w1.Services)
	}
	// A late line for the sealed day 0 reopens it; its old file goes with
	// the next checkpoint, the day's new file once it is sealed again.
	feed(r, 10*time.Hour, "llm", "carol", 0.5)
	saved(t, r)
	if w, _ := r.Window(context.Background(), 3); w.Services["llm"].Calls != 13 || w.Users["carol"] == nil {
		t.Errorf("after a late line: %+v", w.Services["llm"])
	}
	// Day 4: days 0 and 1 are past a 3-day retention.
	feed(r, 96*time.Hour, "search", "bob", 0.001)
	saved(t, r)
	saved(t, r)
	w, _ = r.Window(context.Background(), 5)
	if w.Services["llm"].Calls != 2 || w.Services["search"].Calls != 1 {
		t.Errorf("after the retention: %+v %+v", w.Services["llm"], w.Services["search"])
	}
	names, _ := files.List(FilePrefix)
	for _, n := range names {
		if dn, _, _ := parseFileName(n); dn <= int32(day0.Unix()/86400)+1 {
			t.Errorf("file %s of a day past the retention kept", n)
		}
	}
}

// A crash between a checkpoint's sealed files and its state file: the
// state file before it still rules; the orphan file is removed at start.
func TestRestoreFromAnEarlierCheckpoint(t *testing.T) {
	files := newMemFiles()
	r := New(90, files)
	for range 4 {
		feed(r, 9*time.Hour, "llm", "alice", 0.5)
	}
	before := saved(t, r).Encode()
	feed(r, 30*time.Hour, "search", "bob", 0.001)
	r.Checkpoint() // seals day 0 into a file; the state file is never written
	if names, _ := files.List(FilePrefix); len(names) != 1 {
		t.Fatalf("files %v", names)
	}
	s, err := DecodeSaved(before)
	if err != nil {
		t.Fatal(err)
	}
	r2 := New(90, files)
	if err := r2.Restore(s, nil); err != nil {
		t.Fatal(err)
	}
	if names, _ := files.List(FilePrefix); len(names) != 0 {
		t.Errorf("orphan files kept: %v", names)
	}
	w, _ := r2.Window(context.Background(), 7)
	if w.Services["llm"].Calls != 4 || w.Services["search"] != nil {
		t.Errorf("restored %+v", w.Services)
	}
	// It goes on from there.
	feed(r2, 30*time.Hour, "search", "bob", 0.001)
	saved(t, r2)
	if w, _ := r2.Window(context.Background(), 7); w.Services["search"].Calls != 1 || w.Services["llm"].Calls != 4 {
		t.Errorf("after restore %+v", w.Services)
	}
}

func TestDayRoundTrip(t *testing.T) {
	r := New(90, newMemFiles())
	for i := range 300 {
		feed(r, time.Duration(i)*time.Minute, []string{"llm", "search"}[i%2], fmt.Sprint("u", i%17), 0.1*float64(i%7))
	}
	r.AddLiteLLM(&Usage{Time: day0.UnixMilli() + 100, Service: r.ServiceID("llm"), Model: r.ModelID("llm", "claude"),
		Tier: r.TierID("pro"), User: r.UserID("u3"), Calls: 2, Cost: 1.25, Tokens: [5]float64{10, 20, 3.5}})
	dn := int32(day0.Unix() / 86400)
	data := encodeDay(dn, r.days[dn], &r.names)
	names := &[numTables]table{}
	got, d, err := decodeDay(data, names)
	if err != nil || got != dn {
		t.Fatal(got, err)
	}
	if again := encodeDay(dn, d, names); string(again) != string(data) {
		t.Error("a day decoded and encoded again differs")
	}
	for n := range len(data) {
		if _, _, err := decodeDay(data[:n], &[numTables]table{}); err == nil {
			t.Fatalf("truncated at %d of %d: accepted", n, len(data))
		}
	}
}

// Days written before the distinct-user sketches (RUD1) still decode.
func TestDayWithoutSketches(t *testing.T) {
	r := New(90, newMemFiles())
	l := Line{Time: day0.UnixMilli(), Service: r.ServiceID("search"), Route: r.RouteID("search", "/s"), Tier: r.TierID("pro"),
		User: r.UserID("u"), Model: -1, Unpriced: -1}
	r.Add(&l)
	dn := int32(day0.Unix() / 86400)
	data := encodeDay(dn, r.days[dn], &r.names)
	if data[len(data)-1] != 0 {
		t.Fatal("a day without hashes has sketches")
	}
	legacy := append([]byte(dayMagic1), data[len(dayMagic):len(data)-1]...)
	if _, d, err := decodeDay(legacy, &[numTables]table{}); err != nil || len(d.users) != 1 {
		t.Fatalf("a RUD1 day: %v", err)
	}
}

// A window counts its distinct users, labelled or not, across days and
// services, within the sketch's error (three standard errors here).
func TestWindowUniqueUsers(t *testing.T) {
	r := New(90, newMemFiles())
	const users = 30000
	for i := range users {
		for d := range 3 { // each user on three of seven days
			svc := []string{"llm", "search"}[i%2]
			id := int32(-1)
			if i < 100 {
				id = r.UserID(fmt.Sprint("u", i))
			}
			r.Add(&Line{Time: day0.Add(time.Duration((i+d*2)%7*24) * time.Hour).UnixMilli(), Service: r.ServiceID(svc),
				Route: r.RouteID(svc, "/"+svc), Tier: r.TierID("pro"), User: id, Model: -1, Unpriced: -1,
				UserHash: xxhash.Sum64String(fmt.Sprint("user-", i))})
		}
	}
	saved(t, r)
	w, err := r.Window(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	within := func(what string, got, want int) {
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 3*window.DistinctError {
			t.Errorf("%s: %d, want %d within %.1f%%", what, got, want, 300*window.DistinctError)
		}
	}
	within("window users", w.UniqueUsers, users)
	within("llm users", w.Services["llm"].UniqueUsers, users/2)
	within("search users", w.Services["search"].UniqueUsers, users/2)
	if len(w.Users) != 100 {
		t.Errorf("%d labelled users, want 100", len(w.Users))
	}
	one, _ := r.Window(context.Background(), 1)
	if one.UniqueUsers >= w.UniqueUsers || one.UniqueUsers == 0 {
		t.Errorf("one day has %d users of the week's %d", one.UniqueUsers, w.UniqueUsers)
	}
}

// FuzzDecode: any bytes are a day (or a checkpoint) or an error, never a
// panic or an allocation beyond the input's size.
func FuzzDecode(f *testing.F) {
	r := New(90, newMemFiles())
	feed(r, time.Hour, "llm", "a", 1)
	feed(r, 2*time.Hour, "search", "b", 0.5)
	s := r.Checkpoint()
	f.Add(s.Encode())
	for _, d := range s.Open {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, d, err := decodeDay(data, &[numTables]table{}); err == nil && d == nil {
			t.Fatal("no day, no error")
		}
		if s, err := DecodeSaved(data); err == nil {
			r := New(90, newMemFiles())
			if err := r.Restore(s, nil); err == nil {
				r.Window(context.Background(), MaxDays)
			}
		}
	})
}

func TestLiteLLMUsage(t *testing.T) {
	r := New(90, newMemFiles())
	r.AddLiteLLM(&Usage{Time: day0.UnixMilli(), Service: r.ServiceID("llm"), Model: r.ModelID("llm", "gpt-4o"),
		Tier: r.TierID("pro"), User: r.UserID("u"), Calls: 3, Failures: 1, Cost: 0.75, Tokens: [5]float64{100, 50, 20}})
	saved(t, r)
	w, _ := r.Window(context.Background(), 1)
	m := w.Models["gpt-4o"]
	if m.Calls != 3 || m.Failures != 1 || m.Cost != 0.75 || m.Tokens["cache_read"] != 20 || w.Services["llm"].Cost != 0.75 ||
		w.Services["llm"].Calls != 0 || w.Users["u"].Tokens != 170 || w.Users["u"].Cost != 0.75 {
		t.Errorf("%+v %+v %+v", m, w.Services["llm"], w.Users["u"])
	}
	if got := slices.Sorted(maps.Keys(w.Models)); fmt.Sprint(got) != "[gpt-4o]" {
		t.Errorf("models %v", got)
	}
}
