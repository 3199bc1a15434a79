package exporter

import (
	"os"
	"path/filepath"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/quota"
)

// usageLedger is the ledger stage: it files each user's calls and tokens
// under the billing period of when they happened, in the quota store, and
// remembers each user's tier for the quota series. The current period is
// the clock's, never a log line's. Not safe for concurrent use.
type usageLedger struct {
	store   quota.Store
	periods quota.Periods
	keep    int
	now     func() time.Time
	cur     quota.Period   // cache: the period of the last line
	tierOf  map[string]int // tier index last resolved per user (stored id)
	// tiersChanged counts changes of tierOf, for the quota view.
	tiersChanged uint64
}

// maxTrackedUsers bounds the per-user tier memory.
const maxTrackedUsers = 1_000_000

func newUsageLedger(cfg QuotaConfig, store quota.Store, now func() time.Time, tierOf map[string]int) (*usageLedger, error) {
	ps, err := quota.NewPeriods(cfg.Period)
	if err != nil {
		return nil, err
	}
	if tierOf == nil {
		tierOf = map[string]int{}
	}
	return &usageLedger{store: store, periods: ps, keep: cfg.KeepPeriods, now: now, tierOf: tierOf}, nil
}

// add counts a user's calls and tokens at time at.
func (l *usageLedger) add(user string, tier int, at time.Time, calls, tokens int64) {
	if t, ok := l.tierOf[user]; !(ok && t == tier) && (ok || len(l.tierOf) < maxTrackedUsers) {
		l.tierOf[user] = tier
		l.tiersChanged++
	}
	if !l.cur.Contains(at) {
		l.cur = l.periods.Of(at)
	}
	l.store.Add(l.cur.ID, user, calls, tokens)
}

// current is the billing period now.
func (l *usageLedger) current() quota.Period { return l.periods.Of(l.now()) }

// retain lets the store forget the periods before the kept ones.
func (l *usageLedger) retain() {
	keep := l.current()
	for i := 1; i < l.keep; i++ {
		keep = l.periods.Before(keep)
	}
	l.store.Retain(keep.ID)
}

// defaultInstance names this exporter in a shared ledger: its host and
// state directory.
func defaultInstance(stateDir string) string {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	return host + ":" + stateDir
}
