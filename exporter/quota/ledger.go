// Package quota keeps the usage ledger: calls and tokens per user per
// billing period, counted exactly once. A Store holds it, embedded in the
// exporter's state file or shared by several exporters in Redis, and owns
// the protocol that makes it exact through restarts and outages.
package quota

import (
	"encoding/json"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Usage is what a user used in a period.
type Usage struct {
	Calls  int64 `json:"calls"`
	Tokens int64 `json:"tokens"`
}

// Ledger holds usage per period and user. Not safe for concurrent use.
type Ledger struct {
	periods map[string]map[string]*Usage
	entries int
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{periods: map[string]map[string]*Usage{}} }

// Add counts calls and tokens of user in period. It allocates only for a
// user new to the period.
func (l *Ledger) Add(period, user string, calls, tokens int64) {
	users, ok := l.periods[period]
	if !ok {
		users = map[string]*Usage{}
		l.periods[period] = users
	}
	u, ok := users[user]
	if !ok {
		u = &Usage{}
		users[user] = u
		l.entries++
	}
	u.Calls += calls
	u.Tokens += tokens
}

// Get returns a user's usage in a period.
func (l *Ledger) Get(period, user string) Usage {
	if u, ok := l.periods[period][user]; ok {
		return *u
	}
	return Usage{}
}

// Users returns a copy of a period's usage by user.
func (l *Ledger) Users(period string) map[string]Usage {
	out := make(map[string]Usage, len(l.periods[period]))
	for user, u := range l.periods[period] {
		out[user] = *u
	}
	return out
}

// Periods lists the period IDs the ledger holds, oldest first.
func (l *Ledger) Periods() []string {
	ids := make([]string, 0, len(l.periods))
	for id := range l.periods {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Len is the number of (period, user) entries.
func (l *Ledger) Len() int { return l.entries }

// Empty reports whether the ledger holds nothing.
func (l *Ledger) Empty() bool { return l.entries == 0 }

// Merge adds o to l.
func (l *Ledger) Merge(o *Ledger) {
	if o == nil {
		return
	}
	for period, users := range o.periods {
		for user, u := range users {
			l.Add(period, user, u.Calls, u.Tokens)
		}
	}
}

// Each calls f for every entry, in period then user order.
func (l *Ledger) Each(f func(period, user string, u Usage)) {
	for _, period := range l.Periods() {
		users := make([]string, 0, len(l.periods[period]))
		for user := range l.periods[period] {
			users = append(users, user)
		}
		sort.Strings(users)
		for _, user := range users {
			f(period, user, *l.periods[period][user])
		}
	}
}

// Prune drops periods before the one with ID keepFrom.
func (l *Ledger) Prune(keepFrom string) {
	for id, users := range l.periods {
		if id < keepFrom {
			l.entries -= len(users)
			delete(l.periods, id)
		}
	}
}

// Remove deletes user from every period and returns how many entries went.
// A nil ledger has none.
func (l *Ledger) Remove(user string) int {
	if l == nil {
		return 0
	}
	n := 0
	for _, users := range l.periods {
		if _, ok := users[user]; ok {
			delete(users, user)
			n++
		}
	}
	l.entries -= n
	return n
}

// Rekey renames every user by f (merging users f maps together).
func (l *Ledger) Rekey(f func(user string) string) {
	for period, users := range l.periods {
		out := make(map[string]*Usage, len(users))
		for user, u := range users {
			k := f(user)
			if o, ok := out[k]; ok {
				o.Calls += u.Calls
				o.Tokens += u.Tokens
				l.entries--
				continue
			}
			out[k] = u
		}
		l.periods[period] = out
	}
}

// Clone returns a deep copy.
func (l *Ledger) Clone() *Ledger {
	c := NewLedger()
	c.Merge(l)
	return c
}

// MarshalJSON writes {"2025-11-01": {"alice": {"calls": 3, "tokens": 120}}},
// by hand: at 50,000 users, encoding/json's copy and sort of the maps was
// most of a checkpoint's time. Users come in map order.
func (l *Ledger) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64+l.entries*48)
	b = append(b, '{')
	for i, period := range l.Periods() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendJSONString(b, period), ':', '{')
		first := true
		for user, u := range l.periods[period] {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(appendJSONString(b, user), `:{"calls":`...)
			b = strconv.AppendInt(b, u.Calls, 10)
			b = append(b, `,"tokens":`...)
			b = strconv.AppendInt(b, u.Tokens, 10)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string, as encoding/json escapes
// it (invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *Ledger) UnmarshalJSON(data []byte) error {
	var in map[string]map[string]Usage
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*l = *NewLedger()
	for period, users := range in {
		for user, u := range users {
			l.Add(period, user, u.Calls, u.Tokens)
		}
	}
	return nil
}
