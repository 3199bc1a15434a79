package exporter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"

	"github.com/usage-exporter/usage-exporter/exporter/series"
)

// Label values the exporter itself introduces.
const (
	otherLabel     = "__other__"
	anonymousLabel = "__anonymous__"
)

// Fixed user slots of userLabels; labelled users follow them.
const (
	userAnonymous = iota // lines without a user
	userOther            // users beyond the cap
	userDropped          // every user, under the dropped label policy
	firstUser
)

// userLabels turns user ids into label values under the label policy and
// the user cap, and numbers them, so that the count stage can keep their
// series in a slice. Not safe for concurrent use.
type userLabels struct {
	cfg      UsersConfig
	byID     map[string]int
	labels   []string
	overflow *series.Series
}

func newUserLabels(cfg UsersConfig, overflow *series.Series) *userLabels {
	return &userLabels{cfg: cfg, byID: map[string]int{}, labels: []string{anonymousLabel, otherLabel, ""}, overflow: overflow}
}

// index returns the slot of a user id.
func (u *userLabels) index(user []byte) int {
	switch {
	case len(user) == 0:
		return userAnonymous
	case u.cfg.Label == UserLabelDropped:
		return userDropped
	}
	if i, ok := u.byID[string(user)]; ok {
		return i
	}
	if len(u.byID) >= u.cfg.MaxUsers {
		u.overflow.Inc()
		return userOther
	}
	i := len(u.labels)
	u.labels = append(u.labels, userLabel(u.cfg, user))
	u.byID[string(user)] = i
	return i
}

// label is the label value of a slot.
func (u *userLabels) label(i int) string { return u.labels[i] }

// labelled returns the label of every user within the cap, by id.
func (u *userLabels) labelled() map[string]string {
	out := make(map[string]string, len(u.byID))
	for id, i := range u.byID {
		out[id] = u.labels[i]
	}
	return out
}

// userLabel applies the label policy to a user id.
func userLabel(c UsersConfig, user []byte) string {
	switch c.Label {
	case UserLabelHashed:
		mac := hmac.New(sha256.New, []byte(c.HashKey))
		mac.Write(user)
		return hex.EncodeToString(mac.Sum(nil)[:8])
	case UserLabelDropped:
		return ""
	default:
		return string(user)
	}
}
