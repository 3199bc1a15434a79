package quota

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

func TestPeriods(t *testing.T) {
	ps, err := NewPeriods(DefaultPeriodConfig())
	if err != nil {
		t.Fatal(err)
	}
	oct := ps.Of(time.Date(2025, 10, 31, 23, 59, 59, 0, time.UTC))
	nov := ps.Of(time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC))
	if oct.ID != "2025-10-01" || nov.ID != "2025-11-01" || !oct.End.Equal(nov.Start) {
		t.Errorf("Oct 31 in %+v, Nov 1 in %+v", oct, nov)
	}
	// The 15th, in Berlin: 14 Nov 23:30 UTC is already the 15th there.
	ps, err = NewPeriods(PeriodConfig{Timezone: "Europe/Berlin", ResetDay: 15})
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	p := ps.Of(time.Date(2025, 11, 14, 23, 30, 0, 0, time.UTC))
	if p.ID != "2025-11-15" || p.End.Format("2006-01-02") != "2025-12-15" {
		t.Errorf("reset day 15 in Berlin: %+v", p)
	}
	if p := ps.Of(time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)); p.ID != "2025-12-15" {
		t.Errorf("3 Jan in %s, want 2025-12-15", p.ID)
	}
	if got, ok := ps.ByID("2025-12-15"); !ok || got.End.Format("2006-01-02") != "2026-01-15" {
		t.Errorf("ByID = %+v, %v", got, ok)
	}
	if _, ok := ps.ByID("2025-12-16"); ok {
		t.Error("ByID accepted a day that starts no period")
	}
	if err := (PeriodConfig{ResetDay: 31}).Validate(); err == nil {
		t.Error("reset day 31 accepted")
	}
}

func TestLedger(t *testing.T) {
	l := NewLedger()
	l.Add("2025-10-01", "alice", 1, 100)
	l.Add("2025-10-01", "alice", 1, 50)
	l.Add("2025-11-01", "alice", 1, 0)
	l.Add("2025-11-01", "bob", 2, 7)
	if got := l.Get("2025-10-01", "alice"); got != (Usage{2, 150}) {
		t.Errorf("alice in October %+v", got)
	}
	if l.Len() != 3 {
		t.Errorf("Len %d", l.Len())
	}
	data, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var back Ledger
	if err := json.Unmarshal(data, &back); err != nil || back.Get("2025-11-01", "bob") != (Usage{2, 7}) || back.Len() != 3 {
		t.Errorf("round trip %s -> %v %+v", data, err, back)
	}
	back.Merge(l)
	if back.Get("2025-11-01", "bob") != (Usage{4, 14}) {
		t.Errorf("merge %+v", back.Get("2025-11-01", "bob"))
	}
	back.Prune("2025-11-01")
	if back.Len() != 2 || len(back.Periods()) != 1 {
		t.Errorf("prune left %v", back.Periods())
	}
}

func TestRedisCommitIsAtomicAndIdempotent(t *testing.T) {
	srv := redistest.Start(t)
	cfg := DefaultRedisConfig()
	cfg.URL = srv.URL()
	client, err := NewClient(cfg.URL, cfg.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	r := NewRedis(client, cfg)
	ctx := context.Background()
	b1 := NewLedger()
	b1.Add("2025-11-01", "alice", 3, 300)
	b1.Add("2025-11-01", "bob:with:colons", 1, 0)
	if applied, err := r.Commit(ctx, "host-a", 1, b1, []byte(`{"positions":[1]}`)); err != nil || !applied {
		t.Fatalf("commit 1: %v %v", applied, err)
	}
	// The same batch again (a lost reply, retried): acknowledged, not applied.
	if applied, err := r.Commit(ctx, "host-a", 1, b1, []byte(`{"positions":[1]}`)); err != nil || applied {
		t.Fatalf("retried commit 1: %v %v", applied, err)
	}
	// Another exporter adds to the same ledger under its own checkpoint.
	b2 := NewLedger()
	b2.Add("2025-11-01", "alice", 2, 20)
	if _, err := r.Commit(ctx, "host-b", 1, b2, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// A batch out of sequence is refused.
	var gap *GapError
	if _, err := r.Commit(ctx, "host-a", 3, b2, nil); !errors.As(err, &gap) || gap.Have != 1 {
		t.Fatalf("gap: %v", err)
	}
	usage, err := r.Usage(ctx, "2025-11-01")
	if err != nil {
		t.Fatal(err)
	}
	if usage["alice"] != (Usage{5, 320}) || usage["bob:with:colons"] != (Usage{1, 0}) || len(usage) != 2 {
		t.Errorf("usage %+v", usage)
	}
	seq, state, err := r.Checkpoint(ctx, "host-a")
	if err != nil || seq != 1 || string(state) != `{"positions":[1]}` {
		t.Errorf("checkpoint %d %s %v", seq, state, err)
	}
	if seq, _, err := r.Checkpoint(ctx, "host-c"); err != nil || seq != 0 {
		t.Errorf("unknown instance: %d %v", seq, err)
	}
}

// The hand-written JSON of the ledger is what encoding/json reads back, and
// escapes what encoding/json escapes.
func TestLedgerJSON(t *testing.T) {
	l := NewLedger()
	users := []string{"alice", `quo"te`, `back\slash`, "new\nline", "tab\t", "bell\b\f\x01", "<html>&", "ünï", "bad\xffutf8", "\u2028sep", ""}
	for i, u := range users {
		l.Add("2025-11-01", u, int64(i), int64(100*i))
		l.Add("2025-10-01", u, 1, 1)
	}
	data, err := l.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Ledger
	if err := back.UnmarshalJSON(data); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	for _, u := range users {
		want := l.Get("2025-11-01", u)
		if u == "bad\xffutf8" {
			u = "bad\ufffdutf8"
		}
		if got := back.Get("2025-11-01", u); got != want {
			t.Errorf("%q: %+v, want %+v", u, got, want)
		}
	}
	// The same bytes as encoding/json for each key.
	for _, u := range users {
		std, _ := json.Marshal(u)
		if got := appendJSONString(nil, u); string(got) != string(std) {
			t.Errorf("%q: %s, encoding/json %s", u, got, std)
		}
	}
}
