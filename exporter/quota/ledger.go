// Package quota keeps the usage ledger, calls and tokens per user per
// billing period, and its shared copy in Redis.
package quota

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/fielderr"
)

// PeriodConfig defines billing periods: a month from a reset day, in a time zone.
type PeriodConfig struct {
	Timezone string `yaml:"timezone"`
	ResetDay int    `yaml:"reset_day"`
}

// DefaultPeriodConfig is the calendar month in UTC.
func DefaultPeriodConfig() PeriodConfig { return PeriodConfig{Timezone: "UTC", ResetDay: 1} }

// Validate checks the zone and the day.
func (c PeriodConfig) Validate() error {
	if _, err := c.location(); err != nil {
		return err
	}
	if c.ResetDay < 1 || c.ResetDay > 28 {
		return fielderr.New("reset_day", "must be between 1 and 28 (every month has it), not %d", c.ResetDay)
	}
	return nil
}

func (c PeriodConfig) location() (*time.Location, error) {
	if c.Timezone == "" || c.Timezone == "UTC" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return nil, fielderr.New("timezone", "unknown time zone %q", c.Timezone)
	}
	return loc, nil
}

// Period is one billing period; ID is its first day, "2025-11-01".
type Period struct {
	ID         string
	Start, End time.Time
}

// Contains reports whether t falls in the period.
func (p Period) Contains(t time.Time) bool { return !t.Before(p.Start) && t.Before(p.End) }

// Periods maps times to billing periods.
type Periods struct {
	loc *time.Location
	day int
}

// NewPeriods builds the period calendar of a valid config.
func NewPeriods(c PeriodConfig) (Periods, error) {
	loc, err := c.location()
	if err != nil {
		return Periods{}, err
	}
	day := c.ResetDay
	if day == 0 {
		day = 1
	}
	return Periods{loc: loc, day: day}, nil
}

// Of returns the period t falls in.
func (ps Periods) Of(t time.Time) Period {
	lt := t.In(ps.loc)
	y, m, d := lt.Date()
	if d < ps.day {
		m--
	}
	start := time.Date(y, m, ps.day, 0, 0, 0, 0, ps.loc)
	end := time.Date(y, m+1, ps.day, 0, 0, 0, 0, ps.loc)
	return Period{ID: start.Format("2006-01-02"), Start: start, End: end}
}

// ByID returns the period whose ID (its first day) is id.
func (ps Periods) ByID(id string) (Period, bool) {
	t, err := time.ParseInLocation("2006-01-02", id, ps.loc)
	if err != nil {
		return Period{}, false
	}
	p := ps.Of(t)
	return p, p.ID == id
}

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
func (l *Ledger) Add(period string, user []byte, calls, tokens int64) {
	users, ok := l.periods[period]
	if !ok {
		users = map[string]*Usage{}
		l.periods[period] = users
	}
	u, ok := users[string(user)]
	if !ok {
		u = &Usage{}
		users[string(user)] = u
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
			l.Add(period, []byte(user), u.Calls, u.Tokens)
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

// Clone returns a deep copy.
func (l *Ledger) Clone() *Ledger {
	c := NewLedger()
	c.Merge(l)
	return c
}

// MarshalJSON writes {"2025-11-01": {"alice": {"calls": 3, "tokens": 120}}}.
func (l *Ledger) MarshalJSON() ([]byte, error) {
	out := make(map[string]map[string]Usage, len(l.periods))
	for period, users := range l.periods {
		m := make(map[string]Usage, len(users))
		for user, u := range users {
			m[user] = *u
		}
		out[period] = m
	}
	return json.Marshal(out)
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
			l.Add(period, []byte(user), u.Calls, u.Tokens)
		}
	}
	return nil
}
