package exporter

import (
	"github.com/usage-exporter/usage-exporter/internal/wire"

	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"math"
	"slices"

	"github.com/usage-exporter/usage-exporter/exporter/series"
)

// The state file's part on users: which users have a label of their own and
// their traffic counts, and every user's tier as last resolved (the quota
// series' tier label), keyed by the id as the policy stores it (idScheme).
//
//	magic "UUS1", decayed day (varint), tier names: count, then each;
//	tracked users: count, then each: id, count, err (8-byte floats), slot;
//	tiers: count, then each: id, tier name index.
//
// Strings are a length (uvarint) and their bytes.
const usersMagic = "UUS1"

// idScheme names how user ids are stored: raw, or keyed hashes (with a
// fingerprint of the key, so that a changed key is noticed).
func idScheme(c UsersConfig) string {
	if c.Label == UserLabelRaw {
		return "raw"
	}
	sum := sha256.Sum256([]byte("usage-exporter user id key\x00" + c.HashKey))
	return "hmac-sha256:" + hex.EncodeToString(sum[:8])
}

// rekeyFrom returns how to turn ids stored under scheme into ids stored
// under c: nil when they are the same, and ok false when they cannot be
// turned (hashed ids cannot be unhashed, nor rehashed under another key).
func rekeyFrom(scheme string, c UsersConfig) (f func(string) string, ok bool) {
	if scheme == "" {
		scheme = "raw" // state files before ids followed the policy
	}
	switch want := idScheme(c); {
	case scheme == want:
		return nil, true
	case scheme == "raw":
		return func(raw string) string { return storedIDOf(c, raw) }, true
	}
	return nil, false
}

// encodeUsers writes the users part of the tracked users, at every checkpoint.
func encodeUsers(u *userLabels, tierOf map[string]int, tierNames []string) []byte {
	labelled, cands := u.tracker.Len()
	return appendUsers(nil, u.decayed, tierNames, labelled+cands, u.tracker.Each, tierOf)
}

// encode writes a decoded users part again (forget edits one).
func (s *savedUsers) encode() []byte {
	return appendUsers(nil, s.decayed, s.names, len(s.entries), func(f func(*userEntry)) {
		for _, e := range s.entries {
			f(e)
		}
	}, s.tierOf)
}

// appendUsers writes the users part: n entries, which each hands over.
func appendUsers(b []byte, decayed int64, names []string, n int, each func(func(*userEntry)), tierOf map[string]int) []byte {
	b = slices.Grow(b, 64+n*48+len(tierOf)*32)
	b = append(b, usersMagic...)
	b = binary.AppendVarint(b, decayed)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, name := range names {
		b = wire.AppendStr(b, name)
	}
	b = binary.AppendUvarint(b, uint64(n))
	each(func(e *userEntry) {
		b = wire.AppendStr(b, e.Key)
		b = wire.AppendFloat64(b, e.Count)
		b = wire.AppendFloat64(b, e.Err)
		b = binary.AppendUvarint(b, uint64(e.Slot))
	})
	ids := slices.Sorted(maps.Keys(tierOf)) // a stable file
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = wire.AppendStr(b, id)
		b = binary.AppendUvarint(b, uint64(tierOf[id]))
	}
	return b
}

// savedUsers is the users part, decoded.
type savedUsers struct {
	decayed int64
	entries []*userEntry
	tierOf  map[string]int
	names   []string
}

func decodeUsers(data []byte) (*savedUsers, error) {
	if len(data) < len(usersMagic) || string(data[:len(usersMagic)]) != usersMagic {
		return nil, errors.New("users: not a users part")
	}
	d := wire.NewReader(data[len(usersMagic):], errors.New("users: truncated or corrupt"))
	s := &savedUsers{decayed: d.Varint(), tierOf: map[string]int{}}
	for n := d.Count(1); n > 0 && d.Err == nil; n-- {
		s.names = append(s.names, d.Str())
	}
	for n := d.Count(18); n > 0 && d.Err == nil; n-- {
		e := &userEntry{Key: d.Str(), Count: d.Float64(), Err: d.Float64(), Slot: int(min(d.Uvarint(), math.MaxInt32))}
		s.entries = append(s.entries, e)
	}
	for n := d.Count(2); n > 0 && d.Err == nil; n-- {
		id, t := d.Str(), d.Uvarint()
		if t < uint64(len(s.names)) {
			s.tierOf[id] = int(t)
		}
	}
	if d.Err != nil {
		return nil, d.Err
	}
	return s, nil
}

// restoreUsers rebuilds the user labels and tiers of a state file under c,
// converting raw ids to hashes when the policy now hashes them; a state
// file whose ids cannot be turned into c's gives none.
func restoreUsers(s *savedUsers, scheme string, c UsersConfig, overflow *series.Series) (*userLabels, map[string]int, []string) {
	u := newUserLabels(c, overflow)
	rekey, ok := rekeyFrom(scheme, c)
	if s == nil || !ok {
		return u, nil, nil
	}
	if rekey == nil {
		rekey = func(id string) string { return id }
	}
	u.decayed = s.decayed
	for _, e := range s.entries {
		if !(e.Count >= 0 && e.Err >= 0 && e.Err <= e.Count) || math.IsInf(e.Count, 0) {
			e.Count, e.Err = 0, 0 // a corrupt count must not break the summary's order
		}
		e.Key = rekey(e.Key)
		e.Value = userInfo{label: u.labelOf(e.Key), hash: hashOfStored(e.Key)}
		u.tracker.Restore(e)
	}
	u.tracker.FinishRestore()
	tierOf := make(map[string]int, len(s.tierOf))
	for id, t := range s.tierOf {
		tierOf[rekey(id)] = t
	}
	return u, tierOf, s.names
}

// restoreUserState prepares the state file's users for the first pipeline:
// the ledger's ids turned to the policy's when they were kept raw, and the
// users' labels and tiers. When the policy changed, the per-user series of
// the old labels are dropped, and it returns how the rollups' users are
// renamed (nil: as they are).
func restoreUserState(cp *checkpoint, st *carried, c UsersConfig, m *Metrics, log *slog.Logger, file string) func(string) string {
	rekey, ok := rekeyFrom(cp.UserIDs, c)
	var relabel func(string) string
	switch {
	case !ok:
		log.Warn("the state file's user ids were hashed under another users.label or users.hash_key: "+
			"this period's quota use starts over, and user labels are chosen again", "file", file)
	case rekey != nil && cp.Saved.Ledger == nil && len(cp.Users) == 0 && len(cp.Positions) == 0:
		// No state file: nothing to convert.
		rekey = nil
	case rekey != nil:
		log.Info("hashing the state file's user ids (users.label is now "+c.Label+")", "file", file)
		cp.Saved.Rekey(rekey)
		labelOf := newUserLabels(c, nil).labelOf
		relabel = func(label string) string {
			if isFixedLabel(label) {
				return label
			}
			return labelOf(rekey(label))
		}
	}
	if !ok || rekey != nil {
		// Series under the old policy's labels would show ids the policy
		// now keeps out: they go, and start again under the new labels.
		m.dropUsers(func(label string) bool { return !isFixedLabel(label) })
		st.rewrite = true
	}
	var saved *savedUsers
	if len(cp.Users) > 0 && ok {
		var err error
		if saved, err = decodeUsers(cp.Users); err != nil {
			log.Warn("the state file's user labels and tiers are unreadable: they are chosen again", "file", file, "err", err)
		}
	}
	st.users, st.tierOf, st.tierNames = restoreUsers(saved, cp.UserIDs, c, m.seriesOverflow.With(overflowUser, ""))
	return relabel
}

// restoreOrgs restores the organisations with a label of their own; under
// another policy than the state file's they are chosen again, and the
// series of the old labels go.
func restoreOrgs(cp *checkpoint, st *carried, c OrgsConfig, m *Metrics, log *slog.Logger, file string) {
	if c.Label == UserLabelDropped || len(cp.Orgs) == 0 {
		return
	}
	if cp.OrgIDs != idScheme(c.users()) {
		log.Info("orgs.label or orgs.hash_key changed: organisation labels are chosen again", "file", file)
		m.dropOrgs(func(label string) bool { return !isFixedLabel(label) })
		st.rewrite = true
		return
	}
	saved, err := decodeUsers(cp.Orgs)
	if err != nil {
		log.Warn("the state file's organisation labels are unreadable: they are chosen again", "file", file, "err", err)
		return
	}
	st.orgs, _, _ = restoreUsers(saved, cp.OrgIDs, c.users(), m.seriesOverflow.With(overflowOrg, ""))
}

// isFixedLabel reports a user label the exporter introduces, which names no one.
func isFixedLabel(label string) bool {
	return label == otherLabel || label == anonymousLabel || label == forgottenLabel
}
