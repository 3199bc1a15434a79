package quota

import (
	"time"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
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

// Before returns the period that ends where p starts.
func (ps Periods) Before(p Period) Period { return ps.Of(p.Start.Add(-time.Hour)) }

// ByID returns the period whose ID (its first day) is id.
func (ps Periods) ByID(id string) (Period, bool) {
	t, err := time.ParseInLocation("2006-01-02", id, ps.loc)
	if err != nil {
		return Period{}, false
	}
	p := ps.Of(t)
	return p, p.ID == id
}
