package exporter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/usage-exporter/usage-exporter/exporter/heavy"
	"github.com/usage-exporter/usage-exporter/exporter/series"
)

// Label values the exporter itself introduces.
const (
	otherLabel     = "__other__"
	anonymousLabel = "__anonymous__"
	// forgottenLabel stands for the users `usage-exporter forget` removed.
	forgottenLabel = "__forgotten__"
)

// Fixed user slots of userLabels; labelled users follow them.
const (
	userAnonymous = iota // lines without a user
	userOther            // users without a label of their own
	userDropped          // every user, under the dropped label policy
	userForgotten        // users on the deny list (forget)
	firstUser
)

// Hand-over of user labels: a user outside the labelled set takes the slot
// of the weakest labelled user once its traffic is surely above the
// weakest's times handOverFactor plus handOverMargin; traffic counts halve
// every day.
const (
	handOverFactor  = 1.25
	handOverMargin  = 2
	trafficHalfLife = 24 * time.Hour
)

// userInfo is what the exporter keeps of a tracked user.
type userInfo struct {
	raw   string // the id as lines bring it; "" until a line brought it (restored hashed ids)
	label string // the label value under the policy
	hash  uint64 // of the stored id: the distinct-user sketches' input
}

type userEntry = heavy.Entry[userInfo]

// userLabels resolves user ids: the id as the ledger stores it (the raw id,
// or its keyed hash under the hashed and dropped policies), and the series
// slot: a label of its own for the users.max_users heaviest by traffic,
// __other__ for the rest (see package heavy). Not safe for concurrent use.
type userLabels struct {
	cfg      UsersConfig
	mac      hash.Hash // nil under the raw policy
	tracker  *heavy.Tracker[userInfo]
	byRaw    map[string]*userEntry // tracked users a line brought
	overflow *series.Series
	// version counts changes of the labelled set, for the quota view.
	version uint64
	// decayed is the last day (unix days) the traffic counts were halved for.
	decayed int64
	// denied holds the SHA-256 of the raw ids forgotten: their lines count
	// as __forgotten__, in no ledger and under no label of their own.
	denied map[[sha256.Size]byte]bool
}

func newUserLabels(cfg UsersConfig, overflow *series.Series) *userLabels {
	u := &userLabels{cfg: cfg, byRaw: map[string]*userEntry{}, overflow: overflow,
		tracker: heavy.New[userInfo](cfg.MaxUsers, max(2*cfg.MaxUsers, minCandidates))}
	if cfg.Label != UserLabelRaw {
		u.mac = hmac.New(sha256.New, []byte(cfg.HashKey))
	}
	u.tracker.OnForget = func(e *userEntry) {
		if e.Value.raw != "" {
			delete(u.byRaw, e.Value.raw)
		}
	}
	return u
}

// minCandidates is the smallest Space-Saving summary of unlabelled users.
const minCandidates = 1000

// reuse continues a pipeline's user labels under a new configuration: the
// same policy keeps the tracked users (with a new cap), another starts over.
func (u *userLabels) reuse(cfg UsersConfig, overflow *series.Series) *userLabels {
	if u == nil || u.cfg.Label != cfg.Label || u.cfg.HashKey != cfg.HashKey {
		n := newUserLabels(cfg, overflow)
		if u != nil {
			n.denied = u.denied
		}
		return n
	}
	u.cfg, u.overflow = cfg, overflow
	u.tracker.Resize(cfg.MaxUsers, max(2*cfg.MaxUsers, minCandidates))
	return u
}

// index counts w of traffic for a user id and returns its slot and entry
// (nil for anonymous lines and forgotten users).
func (u *userLabels) index(raw []byte, w float64) (int, *userEntry) {
	if len(raw) == 0 {
		return userAnonymous, nil
	}
	e, ok := u.byRaw[string(raw)]
	if ok {
		u.tracker.Inc(e, w)
	} else {
		// Forgotten users are never tracked, so only lines of users not in
		// byRaw pay for the hash.
		if len(u.denied) > 0 && u.denied[sha256.Sum256(raw)] {
			return userForgotten, nil
		}
		stored := u.storedID(raw)
		if e = u.tracker.Get(stored); e != nil {
			u.tracker.Inc(e, w)
		} else {
			e = u.tracker.Add(stored, w)
			e.Value.label = u.labelOf(stored)
			e.Value.hash = hashOfStored(stored)
			if e.Labelled() {
				u.version++
			}
		}
		e.Value.raw = string(raw)
		u.byRaw[e.Value.raw] = e
	}
	return u.slotOf(e), e
}

// slotOf is the series slot of a tracked user.
func (u *userLabels) slotOf(e *userEntry) int {
	switch {
	case !e.Labelled():
		u.overflow.Inc()
		return userOther
	case u.cfg.Label == UserLabelDropped:
		return userDropped
	}
	return firstUser - 1 + e.Slot
}

// label is the label value of a slot.
func (u *userLabels) label(slot int) string {
	switch slot {
	case userAnonymous:
		return anonymousLabel
	case userOther:
		return otherLabel
	case userDropped:
		return ""
	case userForgotten:
		return forgottenLabel
	}
	if e := u.tracker.Slot(slot - firstUser + 1); e != nil {
		return e.Value.label
	}
	return otherLabel
}

// storedID is the id the ledger keeps: raw, or its keyed hash.
func (u *userLabels) storedID(raw []byte) string {
	if u.mac == nil {
		return string(raw)
	}
	return hashID(u.mac, raw)
}

func (u *userLabels) labelOf(stored string) string {
	if u.cfg.Label == UserLabelDropped {
		return ""
	}
	return stored
}

// hashID is the keyed hash of a user id: 16 hex digits of HMAC-SHA256.
func hashID(mac hash.Hash, raw []byte) string {
	mac.Reset()
	mac.Write(raw)
	var sum [sha256.Size]byte
	return hex.EncodeToString(mac.Sum(sum[:0])[:8])
}

// hashOfStored is the 64-bit hash of a stored id that the distinct-user
// sketches count.
func hashOfStored(id string) uint64 { return xxhash.Sum64String(id) }

// storedIDOf is the stored id of a raw id under a configuration (for
// readers outside the ingest goroutine).
func storedIDOf(c UsersConfig, raw string) string {
	if c.Label == UserLabelRaw {
		return raw
	}
	return hashID(hmac.New(sha256.New, []byte(c.HashKey)), []byte(raw))
}

// rebalance hands labels over to heavier users and halves the traffic
// counts at each new day. It returns the labels that lost their slot,
// whose series the counter drops.
func (u *userLabels) rebalance(now time.Time) []string {
	day := now.Unix() / int64(trafficHalfLife/time.Second)
	if u.decayed == 0 {
		u.decayed = day
	}
	if day > u.decayed {
		f := 1.0
		for d := u.decayed; d < day && f > 1e-9; d++ {
			f /= 2
		}
		u.tracker.Decay(f)
		u.decayed = day
	}
	swaps := u.tracker.Rebalance(handOverFactor, handOverMargin)
	if len(swaps) == 0 {
		return nil
	}
	u.version++
	var gone []string
	for _, s := range swaps {
		if s.Out != nil && u.cfg.Label != UserLabelDropped {
			gone = append(gone, s.Out.Value.label)
		}
	}
	return gone
}

// labelled calls f for every user with a label of their own.
func (u *userLabels) labelled(f func(stored, label string)) {
	u.tracker.EachLabelled(func(e *userEntry) { f(e.Key, e.Value.label) })
}
