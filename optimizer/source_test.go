package optimizer

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// sumQuerier plays Prometheus for the window and profile queries of the
// requests: the sum of usage_requests_total is points (one sample each),
// and cumulative() at a time is its last point within an hour before.
type sumQuerier struct {
	recordingQuerier
	points []model.SamplePair
}

func (q *sumQuerier) valueAt(t time.Time) (model.SampleValue, bool) {
	var v model.SampleValue
	found := false
	for _, p := range q.points {
		if pt := p.Timestamp.Time(); !pt.After(t) && t.Sub(pt) <= time.Hour {
			v, found = p.Value, true
		}
	}
	return v, found
}

func (q *sumQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	q.recordingQuerier.QueryRange(ctx, query, start, end, step)
	if query != "sum(usage_requests_total)" {
		return nil, nil
	}
	var out []model.SamplePair
	for t := start; !t.After(end); t = t.Add(step) {
		if v, ok := q.valueAt(t); ok {
			out = append(out, model.SamplePair{Timestamp: model.TimeFromUnixNano(t.UnixNano()), Value: v})
		}
	}
	return model.Matrix{{Values: out}}, nil
}

func (q *sumQuerier) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	q.recordingQuerier.Query(ctx, query, ts)
	if query != "sum(usage_requests_total)" && query != cumulative("usage_requests_total", "api_service") {
		return nil, nil
	}
	v, ok := q.valueAt(ts)
	if !ok {
		return nil, nil
	}
	m := model.Metric{}
	if query != "sum(usage_requests_total)" {
		m["api_service"] = "llm"
	}
	return model.Vector{{Metric: m, Value: v, Timestamp: model.TimeFromUnixNano(ts.UnixNano())}}, nil
}

func at(h, m, s int, v float64) model.SamplePair {
	return model.SamplePair{Timestamp: model.TimeFromUnixNano(time.Date(2025, 10, 24, h, m, s, 0, time.UTC).UnixNano()),
		Value: model.SampleValue(v)}
}

// A window's figure is the counters' value at its end minus their value at
// its start, exactly; the profile puts each increase in the hour it
// happened in (the last, partial step included), a drop of the sum (a
// series gone) counts nothing, and a sum that begins inside the window
// begins at zero.
func TestPrometheusWindowAndProfile(t *testing.T) {
	now := time.Date(2025, 10, 24, 14, 17, 3, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		before []model.SamplePair // before the window
		calls  float64
		hour12 float64
	}{
		{"counters older than the window", []model.SamplePair{
			{Timestamp: model.TimeFromUnixNano(now.Add(-24*time.Hour - time.Minute).UnixNano()), Value: 100}}, 52, 0},
		{"counters born inside the window", nil, 152, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &sumQuerier{points: append(tc.before,
				at(12, 59, 50, 100), at(13, 0, 0, 100), at(13, 0, 10, 130), // 30 in the step ending 13:00:10: hour 13
				at(13, 59, 50, 130), at(14, 0, 0, 150), // 20 in the step ending at 14:00:00: hour 13
				at(14, 10, 0, 140), // a series gone: nothing
				at(14, 17, 0, 145), // 5 by 14:17:00
				at(14, 17, 3, 152), // and 7 in the last, partial step (the query at now)
			)}
			s, err := (&PrometheusSource{Q: q}).Snapshot(context.Background(), 1, now)
			if err != nil {
				t.Fatal(err)
			}
			if s.Hourly[12] != tc.hour12 || s.Hourly[13] != 50 || s.Hourly[14] != 12 {
				t.Errorf("hourly profile 12-14h: %v, want %v, 50, 12", s.Hourly[12:15], tc.hour12)
			}
			if len(s.Daily) != 1 || s.Daily[0].Calls != tc.hour12+62 {
				t.Errorf("daily %+v, want %v calls on the 24th", s.Daily, tc.hour12+62)
			}
			if got := s.Services["llm"].Calls; got != tc.calls {
				t.Errorf("calls in the window %v, want %v: the value at now minus the value a day before", got, tc.calls)
			}
			if !s.End.Equal(now) || s.Window != 24*time.Hour {
				t.Errorf("window %s to %s (%s)", s.Start, s.End, s.Window)
			}
		})
	}
	for days, want := range map[int]time.Duration{1: 10 * time.Second, 7: 2 * time.Minute, 30: 5 * time.Minute, 90: 15 * time.Minute} {
		if got := profileStep(days); got != want || time.Hour%got != 0 {
			t.Errorf("profile step of %d days %s, want %s (a divisor of an hour)", days, got, want)
		}
	}
}
