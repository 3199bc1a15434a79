package exporter

import (
	"os"
	"path/filepath"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/quota"
)

// usageLedger is the ledger stage: it files each user's calls and tokens
// under the billing period of when they happened, in the quota store, and
// remembers each user's tier for the quota series. Not safe for concurrent
// use.
type usageLedger struct {
	store   quota.Store
	periods quota.Periods
	keep    int
	cur     quota.Period   // cache: the period of the last line
	newest  quota.Period   // the newest period seen: the current one
	tierOf  map[string]int // tier index last resolved per user
}

// maxTrackedUsers bounds the per-user tier memory.
const maxTrackedUsers = 1_000_000

func newUsageLedger(cfg QuotaConfig, store quota.Store, newest quota.Period, tierOf map[string]int) (*usageLedger, error) {
	ps, err := quota.NewPeriods(cfg.Period)
	if err != nil {
		return nil, err
	}
	if tierOf == nil {
		tierOf = map[string]int{}
	}
	return &usageLedger{store: store, periods: ps, keep: cfg.KeepPeriods, newest: newest, tierOf: tierOf}, nil
}

// add counts a user's calls and tokens at time at.
func (l *usageLedger) add(user []byte, tier int, at time.Time, calls, tokens int64) {
	if t, ok := l.tierOf[string(user)]; !(ok && t == tier) && (ok || len(l.tierOf) < maxTrackedUsers) {
		l.tierOf[string(user)] = tier
	}
	l.store.Add(l.periodOf(at).ID, user, calls, tokens)
}

// periodOf returns the period of a time, from the cache when it can, and
// lets the store forget periods older than the kept ones.
func (l *usageLedger) periodOf(t time.Time) quota.Period {
	if !l.cur.Contains(t) {
		l.cur = l.periods.Of(t)
	}
	if l.cur.Start.After(l.newest.Start) {
		l.newest = l.cur
		keep := l.newest
		for i := 1; i < l.keep; i++ {
			keep = l.periods.Before(keep)
		}
		l.store.Retain(keep.ID)
	}
	return l.cur
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
