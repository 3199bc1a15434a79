package rollup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/window"
)

// MaxDays bounds a window.
const MaxDays = 366

// Window is the last days UTC days of log time, the newest line's day the
// last, as of the last checkpoint. A sealed day removed meanwhile (a later
// checkpoint made it obsolete) makes it read the newer checkpoint. Shared
// in Redis, it merges every exporter's days there, the newest line of any
// the last day.
func (r *Rollups) Window(ctx context.Context, days int) (*window.Window, error) {
	if days < 1 || days > MaxDays {
		return nil, fmt.Errorf("days must be from 1 to %d, not %d", MaxDays, days)
	}
	if r.sharing != nil {
		return r.windowShared(ctx, days)
	}
	var err error
	for range 3 {
		v := r.published.get()
		if v == nil {
			v = &view{}
		}
		var w *window.Window
		if w, err = r.window(v, days); !errors.Is(err, errGone) {
			return w, err
		}
	}
	return nil, err
}

var errGone = errors.New("rollup: a sealed day's file is gone")

func (r *Rollups) window(v *view, days int) (*window.Window, error) {
	last := int32(floorDiv(v.newest, msPerDay))
	first := last - int32(days) + 1
	w := emptyWindow(first, last, days)
	if v.newest == 0 {
		return w, nil
	}
	a := newAggregator(w)
	for dn := first; dn <= last; dn++ {
		var data []byte
		if b, ok := v.open[dn]; ok {
			data = b
		} else if gen, ok := v.sealed[dn]; ok {
			b, found, err := r.files.ReadBytes(fileName(dn, gen))
			switch {
			case err != nil:
				return nil, err
			case !found:
				return nil, errGone
			}
			data = b
		} else {
			continue
		}
		names := &[numTables]table{}
		_, d, err := decodeDay(data, names)
		if err != nil {
			return nil, fmt.Errorf("day %s: %w", dayTime(dn).Format(time.DateOnly), err)
		}
		a.add(dn, d, names)
	}
	a.finish()
	if a.first != 0 {
		w.Oldest, w.Newest = time.UnixMilli(a.first).UTC(), time.UnixMilli(a.last).UTC()
	}
	return w, nil
}

func emptyWindow(first, last int32, days int) *window.Window {
	return &window.Window{Start: dayTime(first), End: dayTime(last + 1), Days: days,
		Services: map[string]*window.Service{}, Models: map[string]*window.Model{}, Tiers: map[string]*window.Tier{},
		Users: map[string]*window.User{}, Unpriced: map[string]float64{}, Hourly: make([]float64, 24),
		HourlyByService: map[string][]float64{}, Routes: []window.Route{}, Daily: []window.Day{}}
}

func dayTime(dn int32) time.Time { return time.UnixMilli(int64(dn) * msPerDay).UTC() }

type aggregator struct {
	w           *window.Window
	first, last int64 // the window's first and last line, unix ms
	daily       map[int32]*window.Day
	routes      map[string]*window.Route
	userDay     map[string]int32           // the last day of each user, for their tier
	usersOf     map[string]map[string]bool // service -> user labels with calls, of days without sketches
	distinct    map[string]*window.Distinct
	all         window.Distinct
}

func newAggregator(w *window.Window) *aggregator {
	return &aggregator{w: w, routes: map[string]*window.Route{}, userDay: map[string]int32{},
		usersOf: map[string]map[string]bool{}, daily: map[int32]*window.Day{}, distinct: map[string]*window.Distinct{}}
}

func split(name string) (string, string) {
	a, b, _ := strings.Cut(name, "\xff")
	return a, b
}

func (a *aggregator) service(name string) *window.Service {
	s := a.w.Services[name]
	if s == nil {
		s = &window.Service{Latency: &window.Sketch{}}
		a.w.Services[name] = s
	}
	return s
}

func (a *aggregator) add(dn int32, d *day, names *[numTables]table) {
	w := a.w
	if d.first != 0 && (a.first == 0 || d.first < a.first) {
		a.first = d.first
	}
	a.last = max(a.last, d.last)
	dayFig := a.daily[dn]
	if dayFig == nil {
		dayFig = &window.Day{Date: dayTime(dn).Format(time.DateOnly)}
		a.daily[dn] = dayFig
	}
	for hi, h := range d.hours {
		if h == nil {
			continue
		}
		for id, sv := range h.services {
			if sv == nil {
				continue
			}
			name := names[tService].names[id]
			s := a.service(name)
			s.Calls += sv.calls
			s.Errors += sv.errors
			s.Timeouts += sv.timeouts
			s.Duplicates += sv.duplicates
			s.Cost += sv.cost
			s.PerCallCost += sv.perCall
			s.Egress += sv.egress
			s.Bytes += sv.bytes
			s.LatencySum += sv.latSum
			s.LatencyCount += sv.latCount
			s.Latency.Merge(&sv.latency)
			w.Hourly[hi] += sv.calls
			if w.HourlyByService[name] == nil {
				w.HourlyByService[name] = make([]float64, 24)
			}
			w.HourlyByService[name][hi] += sv.calls
			dayFig.Calls += sv.calls
			dayFig.Cost += sv.cost + sv.egress
		}
		for id, rt := range h.routes {
			if rt == nil {
				continue
			}
			key := names[tRoute].names[id]
			r := a.routes[key]
			if r == nil {
				svc, route := split(key)
				r = &window.Route{Route: route, Service: svc}
				a.routes[key] = r
			}
			r.Calls += rt.calls
			r.Errors += rt.errors
			r.LatencySum += rt.latSum
			r.LatencyCount += rt.latCount
		}
		for id, m := range h.models {
			if m == nil {
				continue
			}
			svc, name := split(names[tModel].names[id])
			x := w.Models[name]
			if x == nil {
				x = &window.Model{Tokens: map[string]float64{}, CostByService: map[string]float64{}}
				w.Models[name] = x
			}
			x.Calls += m.calls
			x.Failures += m.failures
			for i, n := range m.tokens {
				if n != 0 {
					x.Tokens[window.Directions[i]] += n
				}
			}
			x.Cost += m.cost
			if m.cost != 0 {
				x.CostByService[svc] += m.cost
			}
			x.Prompts.Simple += m.prompts[0]
			x.Prompts.Medium += m.prompts[1]
			x.Prompts.Complex += m.prompts[2]
		}
		for id, t := range h.tiers {
			if t == nil {
				continue
			}
			name := names[tTier].names[id]
			x := w.Tiers[name]
			if x == nil {
				x = &window.Tier{}
				w.Tiers[name] = x
			}
			x.Calls += t.calls
			x.Cost += t.cost
		}
		for id, n := range h.unpriced {
			if n != 0 {
				w.Unpriced[names[tReason].names[id]] += n
			}
		}
	}
	for id, u := range d.users {
		if u == nil {
			continue
		}
		name := names[tUser].names[id]
		x := w.Users[name]
		if x == nil {
			x = &window.User{ByService: map[string]float64{}}
			w.Users[name] = x
		}
		if last, ok := a.userDay[name]; !ok || dn >= last {
			a.userDay[name] = dn
			x.Tier = names[tTier].names[u.tier]
		}
		x.Calls += u.calls
		x.Cost += u.cost
		x.Tokens += u.tokens
		for s, n := range u.byService {
			if n == 0 {
				continue
			}
			svc := names[tService].names[s]
			x.ByService[svc] += n
			if len(d.distinct) > 0 {
				continue
			}
			if a.usersOf[svc] == nil {
				a.usersOf[svc] = map[string]bool{}
			}
			a.usersOf[svc][name] = true
		}
	}
	for s, x := range d.distinct {
		if x == nil {
			continue
		}
		svc := names[tService].names[s]
		if a.distinct[svc] == nil {
			a.distinct[svc] = &window.Distinct{}
		}
		a.distinct[svc].Merge(x)
		a.all.Merge(x)
	}
}

func (a *aggregator) finish() {
	for _, dn := range slices.Sorted(maps.Keys(a.daily)) {
		if d := a.daily[dn]; d.Calls != 0 || d.Cost != 0 {
			a.w.Daily = append(a.w.Daily, *d)
		}
	}
	// Users: the sketches' count; days from before the sketches add their
	// labelled users (a lower bound: __other__ counts once).
	legacy := map[string]bool{}
	for svc, users := range a.usersOf {
		n := 0
		for u := range users {
			if u != window.AnonymousUser {
				n++
				legacy[u] = true
			}
		}
		a.service(svc).UniqueUsers = max(n, a.distinct[svc].Count())
	}
	for svc, x := range a.distinct {
		if _, ok := a.usersOf[svc]; !ok {
			a.service(svc).UniqueUsers = x.Count()
		}
	}
	a.w.UniqueUsers = max(len(legacy), a.all.Count())
	for _, r := range a.routes {
		a.w.Routes = append(a.w.Routes, *r)
	}
	sort.Slice(a.w.Routes, func(i, j int) bool {
		if a.w.Routes[i].Service != a.w.Routes[j].Service {
			return a.w.Routes[i].Service < a.w.Routes[j].Service
		}
		return a.w.Routes[i].Route < a.w.Routes[j].Route
	})
}
