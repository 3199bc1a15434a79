package rollup

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/usage-exporter/usage-exporter/internal/window"
)

// Exporters that share a ledger in Redis share their rollups there too:
// each exporter puts its days, as a checkpoint saved them, under its
// instance name (a day's hash, one field an exporter), and a window merges
// every exporter's. What an exporter puts is its saved state, not
// increments: putting it again, after a crash or a Redis outage, counts
// nothing twice.

// Share is the rollups' side in Redis.
type Share struct {
	client    *redis.Client
	prefix    string
	instance  string
	timeout   time.Duration
	retention int32 // days
}

// NewShare keeps rollups in Redis under prefix, this exporter's as instance.
func NewShare(client *redis.Client, prefix, instance string, timeout time.Duration, retentionDays int) *Share {
	return &Share{client: client, prefix: prefix, instance: instance, timeout: timeout, retention: int32(retentionDays)}
}

func (s *Share) dayKey(dn int32) string { return s.prefix + "rollup:day:" + strconv.Itoa(int(dn)) }
func (s *Share) newestKey() string      { return s.prefix + "rollup:newest" }

// put writes this exporter's days and its newest line time, in one
// transaction.
func (s *Share) put(ctx context.Context, days map[int32][]byte, newest int64) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		newestDay := int32(floorDiv(newest, msPerDay))
		for dn, data := range days {
			p.HSet(ctx, s.dayKey(dn), s.instance, data)
			// Retention counts in log time, Redis' expiry in its clock's: a
			// day lives as many days from now as the newest line leaves it.
			p.Expire(ctx, s.dayKey(dn), time.Duration(max(dn+s.retention+1-newestDay, 1))*24*time.Hour)
		}
		p.HSet(ctx, s.newestKey(), s.instance, newest)
		return nil
	})
	return err
}

// has reports which days Redis holds of this exporter.
func (s *Share) has(ctx context.Context, days []int32) (map[int32]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmds := make([]*redis.BoolCmd, len(days))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, dn := range days {
			cmds[i] = p.HExists(ctx, s.dayKey(dn), s.instance)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[int32]bool{}
	for i, c := range cmds {
		out[days[i]] = c.Val()
	}
	return out, nil
}

// newest is the newest line time of every exporter (unix ms).
func (s *Share) newest(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	vals, err := s.client.HVals(ctx, s.newestKey()).Result()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, v := range vals {
		if x, err := strconv.ParseInt(v, 10, 64); err == nil {
			n = max(n, x)
		}
	}
	return n, nil
}

// days returns every exporter's part of each day.
func (s *Share) days(ctx context.Context, days []int32) (map[int32][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout*time.Duration(1+len(days)/30))
	defer cancel()
	cmds := make([]*redis.StringSliceCmd, len(days))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, dn := range days {
			cmds[i] = p.HVals(ctx, s.dayKey(dn))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[int32][]string, len(days))
	for i, c := range cmds {
		out[days[i]] = c.Val()
	}
	return out, nil
}

// sharing is the rollups' state of what Redis has of them.
type sharing struct {
	share *Share
	mu    sync.Mutex
	// sealed holds days sealed since they were last put.
	sealed map[int32][]byte
	errors int
}

// Share makes the rollups put their saved days in Redis (Push) and read
// windows from there.
func (r *Rollups) Share(s *Share) { r.sharing = &sharing{share: s, sealed: map[int32][]byte{}} }

// sealedForShare remembers a sealed day's bytes until they are put.
func (r *Rollups) sealedForShare(dn int32, data []byte) {
	if r.sharing == nil {
		return
	}
	r.sharing.mu.Lock()
	defer r.sharing.mu.Unlock()
	r.sharing.sealed[dn] = data
}

// Push puts what the last saved checkpoint holds, the open days and the days
// sealed since the last push, and reports whether it could.
func (r *Rollups) Push(ctx context.Context) error {
	sh := r.sharing
	v := r.published.get()
	if sh == nil || v == nil {
		return nil
	}
	sh.mu.Lock()
	taken := sh.sealed
	sh.sealed = map[int32][]byte{}
	sh.mu.Unlock()
	days := maps.Clone(taken)
	maps.Copy(days, v.open)
	err := sh.share.put(ctx, days, v.newest)
	if err != nil {
		// Put them again next time, unless sealed again meanwhile.
		sh.mu.Lock()
		sh.errors++
		for dn, data := range taken {
			if _, newer := sh.sealed[dn]; !newer {
				sh.sealed[dn] = data
			}
		}
		sh.mu.Unlock()
	}
	return err
}

// Reconcile puts the sealed days Redis does not have (it lost them, or this
// exporter sealed them while Redis was away), reading them from their files.
func (r *Rollups) Reconcile(ctx context.Context) error {
	sh := r.sharing
	v := r.published.get()
	if sh == nil || v == nil || len(v.sealed) == 0 {
		return nil
	}
	days := slices.Sorted(maps.Keys(v.sealed))
	has, err := sh.share.has(ctx, days)
	if err != nil {
		return err
	}
	for _, dn := range days {
		if has[dn] {
			continue
		}
		data, found, err := r.files.ReadBytes(fileName(dn, v.sealed[dn]))
		if err != nil || !found {
			continue
		}
		r.sealedForShare(dn, data)
	}
	return r.Push(ctx)
}

// windowShared merges every exporter's days of the window.
func (r *Rollups) windowShared(ctx context.Context, days int) (*window.Window, error) {
	sh := r.sharing.share
	newest, err := sh.newest(ctx)
	if err != nil {
		return nil, err
	}
	last := int32(floorDiv(newest, msPerDay))
	first := last - int32(days) + 1
	w := emptyWindow(first, last, days)
	if newest == 0 {
		return w, nil
	}
	dns := make([]int32, 0, days)
	for dn := first; dn <= last; dn++ {
		dns = append(dns, dn)
	}
	blobs, err := sh.days(ctx, dns)
	if err != nil {
		return nil, err
	}
	a := newAggregator(w)
	for _, dn := range dns {
		for _, b := range blobs[dn] {
			names := &[numTables]table{}
			_, d, err := decodeDay([]byte(b), names)
			if err != nil {
				continue // an exporter's corrupt day: the others still count
			}
			a.add(dn, d, names)
		}
	}
	a.finish()
	if a.first != 0 {
		w.Oldest, w.Newest = time.UnixMilli(a.first).UTC(), time.UnixMilli(a.last).UTC()
	}
	return w, nil
}

// RenameUser renames the users in names to as in every exporter's days in
// Redis (a user forgotten), keeping each key's expiry. It returns the
// number of (day, exporter) entries rewritten.
func (s *Share) RenameUser(ctx context.Context, names []string, as string) (int, error) {
	n := 0
	iter := s.client.Scan(ctx, 0, s.prefix+"rollup:day:*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		vals, err := s.client.HGetAll(ctx, key).Result()
		if err != nil {
			return n, err
		}
		for inst, data := range vals {
			out, changed, err := renameInDay([]byte(data), names, as)
			if err != nil {
				return n, fmt.Errorf("%s %s: %w", key, inst, err)
			}
			if !changed {
				continue
			}
			if err := s.client.HSet(ctx, key, inst, out).Err(); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, iter.Err()
}
