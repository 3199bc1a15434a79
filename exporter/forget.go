package exporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/rollup"
	"github.com/usage-exporter/usage-exporter/exporter/state"
)

// deniedFile is the deny list in the state directory: the SHA-256 of each
// forgotten raw user id, never the id itself.
const deniedFile = "forgotten.json"

type deniedList struct {
	SHA256 []string `json:"sha256"`
}

// readDenied loads the deny list of dir (empty when there is none).
func readDenied(dir *state.Dir) (map[[sha256.Size]byte]bool, []string, error) {
	var l deniedList
	if _, err := dir.Read(deniedFile, &l); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir.File(deniedFile), err)
	}
	set := make(map[[sha256.Size]byte]bool, len(l.SHA256))
	for _, h := range l.SHA256 {
		var k [sha256.Size]byte
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != len(k) {
			return nil, nil, fmt.Errorf("%s: %q is not a SHA-256 in hex", dir.File(deniedFile), h)
		}
		set[[sha256.Size]byte(b)] = true
	}
	return set, l.SHA256, nil
}

// ForgetReport says what Forget removed.
type ForgetReport struct {
	StoredID      string // the id as the ledger kept it (raw, or its keyed hash)
	Label         string // the user label value its series had ("" under the dropped policy)
	LedgerEntries int    // (period, user) entries removed from the state file
	RedisFields   int    // hash fields removed from the shared ledger in Redis
	RedisRollups  int    // exporters' days in Redis that named the user, rewritten
	Series        int    // per-user series removed
	TrackedUser   bool   // the user had a place among the tracked users
	RollupDays    int    // days of the rollups that named the user
}

// Forget removes a user from an exporter's state directory, and from the
// shared ledger in Redis when one is configured: the ledger's entries, the
// per-user series, the user's place among the tracked users and tiers, and
// the user's name in the rollups (renamed __forgotten__, so that totals
// stay whole). The id goes on the deny list, so that lines of that user
// count as __forgotten__ from then on. The exporter must be stopped: Forget
// takes the state directory's lock.
func Forget(ctx context.Context, cfg *Config, stateDir, user string, now func() time.Time) (ForgetReport, error) {
	var rep ForgetReport
	if user == "" {
		return rep, fmt.Errorf("no user id given")
	}
	if err := cfg.Validate(); err != nil {
		return rep, fmt.Errorf("configuration: %w", err)
	}
	dir, err := state.Open(stateDir)
	if err != nil {
		return rep, fmt.Errorf("%w (stop the exporter first: forget edits its state)", err)
	}
	defer dir.Close()

	rep.StoredID = storedIDOf(cfg.Users, user)
	rep.Label = newUserLabels(cfg.Users, nil).labelOf(rep.StoredID)
	// The state file may still hold raw ids that the next start would hash.
	ids := []string{user, rep.StoredID}
	labels := []string{user, rep.Label}

	_, list, err := readDenied(dir)
	if err != nil {
		return rep, err
	}
	sum := sha256.Sum256([]byte(user))
	if h := hex.EncodeToString(sum[:]); !slices.Contains(list, h) {
		if err := dir.Write(deniedFile, deniedList{SHA256: append(list, h)}); err != nil {
			return rep, err
		}
	}

	cp, lines, err := readState(dir)
	if err != nil {
		return rep, fmt.Errorf("reading %s: %w", dir.File(stateFile), err)
	}
	for _, id := range ids {
		rep.LedgerEntries += cp.Saved.Ledger.Remove(id)
		if cp.Saved.Redis != nil && cp.Saved.Redis.Inflight != nil {
			rep.LedgerEntries += cp.Saved.Redis.Inflight.Counts.Remove(id)
		}
	}
	if len(cp.Users) > 0 {
		s, err := decodeUsers(cp.Users)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", dir.File(stateFile), err)
		}
		s.entries = slices.DeleteFunc(s.entries, func(e *userEntry) bool {
			found := slices.Contains(ids, e.Key)
			rep.TrackedUser = rep.TrackedUser || found
			return found
		})
		for _, id := range ids {
			delete(s.tierOf, id)
		}
		cp.Users = s.encode()
	}
	if lines != nil {
		if now == nil {
			now = time.Now
		}
		m := NewMetrics(prometheus.NewRegistry(), cfg.Metrics, now)
		if _, err := m.Lines.Restore(lines); err != nil {
			return rep, fmt.Errorf("%s: %w", dir.File(stateFile), err)
		}
		rep.Series = m.dropUsers(func(l string) bool { return l != "" && slices.Contains(labels, l) })
		lines = m.Lines.Snapshot().Encode(nil)
	}
	var rollups *rollup.Rollups
	var saved *rollup.Saved
	if len(cp.Rollups) > 0 && rep.Label != "" {
		rollups = rollup.New(max(cfg.Rollups.Days, 1), stateFiles{dir})
		s, err := rollup.DecodeSaved(cp.Rollups)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", dir.File(stateFile), err)
		}
		if err := rollups.Restore(s, nil); err != nil {
			return rep, err
		}
		if rep.RollupDays, err = rollups.RenameUser(labels, forgottenLabel); err != nil {
			return rep, err
		}
		saved = rollups.Checkpoint()
		cp.Rollups = saved.Encode()
	}
	if cp.Version != 0 || lines != nil {
		if err := dir.WriteBytes(stateFile, encodeState(&cp, lines)); err != nil {
			return rep, err
		}
	}
	if rollups != nil {
		rollups.Saved(saved) // the files of the days as they were go
	}

	if cfg.Redis.Enabled() {
		client, err := quota.NewClient(cfg.Redis.URL, cfg.Redis.Timeout)
		if err != nil {
			return rep, err
		}
		defer client.Close()
		n, err := quota.NewRedis(client, cfg.Redis.RedisConfig).Forget(ctx, ids...)
		rep.RedisFields = n
		if err != nil {
			return rep, fmt.Errorf("removing the user from the shared ledger in Redis: %w", err)
		}
		if rep.Label != "" {
			share := rollup.NewShare(client, cfg.Redis.KeyPrefix, "", cfg.Redis.Timeout, cfg.Rollups.Days)
			if rep.RedisRollups, err = share.RenameUser(ctx, labels, forgottenLabel); err != nil {
				return rep, fmt.Errorf("renaming the user in the rollups in Redis: %w", err)
			}
		}
	}
	return rep, nil
}
