// Package rollup keeps the lines' figures by log time: per UTC hour by
// api_service, route, model and tier, and per UTC day by user, for a
// bounded number of days. The optimizer reads windows of them from the
// exporter (internal/window), so that it honours its days parameter and has
// hourly and daily profiles without Prometheus.
//
// The days being written are held in memory and saved in the state file
// with every checkpoint; a day the newest line left behind is sealed into a
// file of its own, written once, and read back when a window asks for it
// (or when a late line reopens it). The state file names the sealed files
// it counts on, so a crash anywhere leaves the rollups as of the last
// checkpoint, like every other count.
package rollup

import (
	"github.com/usage-exporter/usage-exporter/internal/window"
)

// Rollups are the rollups of one exporter. The ingest goroutine alone calls
// Add, AddLiteLLM and Checkpoint; Saved, Deleted and Window are safe for
// concurrent use.
type Rollups struct {
	names [numTables]table
	days  map[int32]*day // open days, by unix day
	// sealed are the days on disk, with their file's generation; gens the
	// last generation written of every day.
	sealed    map[int32]uint32
	gens      map[int32]uint32
	newest    int64 // unix milliseconds of the newest line
	oldest    int64
	retention int32 // days
	files     Files
	published published
	sharing   *sharing // nil unless shared in Redis
	cache     hourCache
}

// The tables of names the indexes of the rollups refer to.
const (
	tService = iota
	tRoute   // "service\xffroute"
	tModel
	tTier
	tUser
	tReason // of unpriced calls
	numTables
)

type table struct {
	index map[string]int32
	names []string
}

func (t *table) id(name string) int32 {
	if i, ok := t.index[name]; ok {
		return i
	}
	if t.index == nil {
		t.index = map[string]int32{}
	}
	i := int32(len(t.names))
	t.names = append(t.names, name)
	t.index[name] = i
	return i
}

// day is one UTC day: 24 hours and the users, and the times (unix ms) of
// its first and last line.
type day struct {
	first, last int64
	hours       [24]*hour
	users       []*userDay // by user id
	// distinct counts the day's users by service id, all of them (labelled
	// or not): the users of a window are the union of its days'.
	distinct []*window.Distinct
}

// hour holds one UTC hour, each table dense by id.
type hour struct {
	services []*serviceAgg
	routes   []*routeAgg
	models   []*modelAgg // by modelKey id
	tiers    []*tierAgg
	unpriced []float64 // by reason id
}

type serviceAgg struct {
	calls, errors, timeouts, duplicates float64
	cost, perCall, egress, bytes        float64
	latSum, latCount                    float64
	latency                             window.Sketch
}

type routeAgg struct {
	calls, errors, latSum, latCount float64
}

type modelAgg struct {
	calls, failures float64
	tokens          [5]float64
	cost            float64
	prompts         [3]float64
}

type tierAgg struct {
	calls, cost float64
}

type userDay struct {
	tier                int32
	calls, cost, tokens float64
	byService           []float64 // by service id
}

// New returns empty rollups that keep retention days, with sealed days in
// files.
func New(retention int, files Files) *Rollups {
	return &Rollups{days: map[int32]*day{}, sealed: map[int32]uint32{}, gens: map[int32]uint32{}, retention: int32(retention),
		files: files}
}

// ID interns a name of a table: the ingest stage maps its own indexes to
// these once.
func (r *Rollups) ServiceID(name string) int32 { return r.names[tService].id(name) }

// RouteID is the id of a route of a service.
func (r *Rollups) RouteID(service, route string) int32 {
	return r.names[tRoute].id(service + "\xff" + route)
}

// ModelID is the id of a model's calls in a service.
func (r *Rollups) ModelID(service, model string) int32 {
	return r.names[tModel].id(service + "\xff" + model)
}

// TierID is the id of a tier.
func (r *Rollups) TierID(name string) int32 { return r.names[tTier].id(name) }

// UserID is the id of a user label.
func (r *Rollups) UserID(label string) int32 { return r.names[tUser].id(label) }

// ReasonID is the id of a reason calls are unpriced.
func (r *Rollups) ReasonID(reason string) int32 { return r.names[tReason].id(reason) }

// Line is one request, by the ids of the rollups.
type Line struct {
	Time                 int64 // log time, unix milliseconds
	Service, Route, Tier int32
	User                 int32 // -1: none
	Model                int32 // -1: not a model call
	Unpriced             int32 // -1: priced (or free)
	Failed, Timeout      bool
	Duplicate            bool
	HasDuration          bool
	Duration             float64
	Bytes                float64
	Egress               float64
	Cost                 float64 // model or per-call
	HasTokens            bool
	Tokens               [5]float64
	Prompt               int64
	UserTokens           float64
	UserHash             uint64 // of the user's stored id; 0: none
}

// hourCache remembers the hour last written, which most lines share.
type hourCache struct {
	unixHour int64
	d        *day
	h        *hour
}

const (
	msPerHour = 3600 * 1000
	msPerDay  = 24 * msPerHour
)

// at returns the day and hour of a time (unix ms), creating them; nil
// for a time before the retention.
func (r *Rollups) at(ms int64) (*day, *hour) {
	if ms > r.newest {
		r.newest = ms
	}
	if r.oldest == 0 || ms < r.oldest {
		r.oldest = ms
	}
	uh := floorDiv(ms, msPerHour)
	if r.cache.h != nil && r.cache.unixHour == uh {
		r.cache.d.span(ms)
		return r.cache.d, r.cache.h
	}
	dn := int32(floorDiv(ms, msPerDay))
	if dn <= int32(floorDiv(r.newest, msPerDay))-r.retention {
		return nil, nil
	}
	d := r.days[dn]
	if d == nil {
		if d = r.reopen(dn); d == nil {
			return nil, nil
		}
	}
	h := d.hours[uh-int64(dn)*24]
	if h == nil {
		h = &hour{}
		d.hours[uh-int64(dn)*24] = h
	}
	d.span(ms)
	r.cache = hourCache{unixHour: uh, d: d, h: h}
	return d, h
}

// span widens the day's first and last line times to ms.
func (d *day) span(ms int64) {
	if d.first == 0 || ms < d.first {
		d.first = ms
	}
	if ms > d.last {
		d.last = ms
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func grow[T any](s []*T, i int32) []*T {
	if int(i) < len(s) {
		return s
	}
	return append(s, make([]*T, int(i)+1-len(s))...)
}

// at is the aggregate at index i of *s, grown and created as needed.
func at[T any](s *[]*T, i int32) *T {
	*s = grow(*s, i)
	x := (*s)[i]
	if x == nil {
		x = new(T)
		(*s)[i] = x
	}
	return x
}

// addAt adds v at index i of *s, grown as needed.
func addAt(s *[]float64, i int32, v float64) {
	for int(i) >= len(*s) {
		*s = append(*s, 0)
	}
	(*s)[i] += v
}

// Add counts a line.
func (r *Rollups) Add(l *Line) {
	d, h := r.at(l.Time)
	if h == nil {
		return
	}
	sv := at(&h.services, l.Service)
	sv.calls++
	if l.Failed {
		sv.errors++
	}
	if l.Timeout {
		sv.timeouts++
	}
	if l.Duplicate {
		sv.duplicates++
	}
	sv.bytes += l.Bytes
	sv.egress += l.Egress
	sv.cost += l.Cost
	if l.Model < 0 {
		sv.perCall += l.Cost
	}
	if l.HasDuration {
		sv.latSum += l.Duration
		sv.latCount++
		sv.latency.Add(l.Duration, 1)
	}
	rt := at(&h.routes, l.Route)
	rt.calls++
	if l.Failed {
		rt.errors++
	}
	if l.HasDuration {
		rt.latSum += l.Duration
		rt.latCount++
	}
	if l.Model >= 0 {
		m := r.model(h, l.Model)
		m.calls++
		if l.Failed {
			m.failures++
		}
		m.cost += l.Cost
		if l.HasTokens {
			for i, n := range l.Tokens {
				m.tokens[i] += n
			}
			switch {
			case l.Prompt < window.SimpleBelow:
				m.prompts[0]++
			case l.Prompt < window.ComplexFrom:
				m.prompts[1]++
			default:
				m.prompts[2]++
			}
		}
	}
	if l.Unpriced >= 0 {
		addAt(&h.unpriced, l.Unpriced, 1)
	}
	t := at(&h.tiers, l.Tier)
	t.calls++
	t.cost += l.Cost
	if l.UserHash != 0 {
		d.distinctOf(l.Service).Add(l.UserHash)
	}
	if l.User >= 0 {
		u := r.user(d, l.User, l.Tier)
		u.calls++
		u.cost += l.Cost
		u.tokens += l.UserTokens
		addAt(&u.byService, l.Service, 1)
	}
}

func (d *day) distinctOf(svc int32) *window.Distinct { return at(&d.distinct, svc) }

func (r *Rollups) model(h *hour, id int32) *modelAgg { return at(&h.models, id) }

func (r *Rollups) user(d *day, id, tier int32) *userDay {
	u := at(&d.users, id)
	u.tier = tier
	return u
}

// Usage is what LiteLLM reported of a model for a user, counted at the
// time of the scrape.
type Usage struct {
	Time            int64 // unix milliseconds
	Service, Model  int32
	Tier            int32
	User            int32  // -1: none
	UserHash        uint64 // of the user's stored id; 0: none
	Calls, Failures float64
	Cost            float64
	Tokens          [5]float64
}

// AddLiteLLM counts what a LiteLLM scrape added, in the hour of the scrape.
func (r *Rollups) AddLiteLLM(u *Usage) {
	d, h := r.at(u.Time)
	if h == nil {
		return
	}
	m := r.model(h, u.Model)
	m.calls += u.Calls
	m.failures += u.Failures
	m.cost += u.Cost
	var tokens float64
	for i, n := range u.Tokens {
		m.tokens[i] += n
		tokens += n
	}
	if u.Cost != 0 {
		at(&h.services, u.Service).cost += u.Cost
		at(&h.tiers, u.Tier).cost += u.Cost
	}
	if u.UserHash != 0 && (u.Cost != 0 || tokens != 0) {
		d.distinctOf(u.Service).Add(u.UserHash)
	}
	if u.User >= 0 && (u.Cost != 0 || tokens != 0) {
		ud := r.user(d, u.User, u.Tier)
		ud.cost += u.Cost
		ud.tokens += tokens
	}
}
