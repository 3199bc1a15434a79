package optimizer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// sumQuerier answers the profile's sum queries from a list of points (a
// sum as Prometheus would return it at each step) and every other query
// with nothing; it keeps the queries it was asked.
type sumQuerier struct {
	recordingQuerier
	points []model.SamplePair
}

func (q *sumQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	q.recordingQuerier.QueryRange(ctx, query, start, end, step)
	if query != "sum(usage_requests_total)" {
		return nil, nil
	}
	var in []model.SamplePair
	for _, p := range q.points {
		if t := p.Timestamp.Time(); !t.Before(start) && !t.After(end) && t.Sub(start)%step == 0 {
			in = append(in, p)
		}
	}
	return model.Matrix{{Values: in}}, nil
}

func (q *sumQuerier) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	q.recordingQuerier.Query(ctx, query, ts)
	if query != "sum(usage_requests_total)" || len(q.points) == 0 {
		return nil, nil
	}
	last := q.points[len(q.points)-1]
	return model.Vector{{Value: last.Value, Timestamp: model.TimeFromUnixNano(ts.UnixNano())}}, nil
}

// The window's hours count back from the analysis time, and the hourly
// profile takes differences of the sum at clock-aligned steps: each
// increase lands in the hour it happened in, the last partial step
// included, and a drop of the sum (a series gone) counts nothing.
func TestPrometheusWindowAndProfile(t *testing.T) {
	now := time.Date(2025, 10, 24, 14, 17, 3, 0, time.UTC)
	at := func(h, m, s int, v float64) model.SamplePair {
		return model.SamplePair{Timestamp: model.TimeFromUnixNano(time.Date(2025, 10, 24, h, m, s, 0, time.UTC).UnixNano()),
			Value: model.SampleValue(v)}
	}
	q := &sumQuerier{points: []model.SamplePair{
		at(12, 59, 50, 100), at(13, 0, 0, 100), at(13, 0, 10, 130), // 30 in the step ending 13:00:10: hour 13
		at(13, 59, 50, 130), at(14, 0, 0, 150), // 20 in the step ending at 14:00:00: hour 13
		at(14, 10, 0, 140), // a series gone: nothing
		at(14, 17, 0, 145), // 5 by 14:17:00
		at(14, 17, 3, 152), // and 7 in the last, partial step (the query at now)
	}}
	s, err := (&PrometheusSource{Q: q}).Snapshot(context.Background(), 1, now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Hourly[12] != 0 || s.Hourly[13] != 50 || s.Hourly[14] != 12 {
		t.Errorf("hourly profile 12-14h: %v, want 0, 50, 12", s.Hourly[12:15])
	}
	if len(s.Daily) != 1 || s.Daily[0].Calls != 62 {
		t.Errorf("daily %+v, want 62 calls on the 24th", s.Daily)
	}
	// Evaluated at 15:00, every hourly block shifted back 42m57s: the
	// window ends at 14:17:03.
	var window string
	for _, query := range q.queries {
		if strings.HasPrefix(query, "sum_over_time((sum by (api_service) (increase(usage_requests_total[1h]") {
			window = query
		}
	}
	if want := "sum_over_time((sum by (api_service) (increase(usage_requests_total[1h] offset 2577000ms)))[1d:1h])"; window != want {
		t.Errorf("window query\n%s\nwant\n%s", window, want)
	}
	if !s.End.Equal(now) || s.Window != 24*time.Hour {
		t.Errorf("window %s to %s (%s)", s.Start, s.End, s.Window)
	}
	for days, want := range map[int]time.Duration{1: 10 * time.Second, 7: 2 * time.Minute, 30: 5 * time.Minute, 90: 15 * time.Minute} {
		if got := profileStep(days); got != want || time.Hour%got != 0 {
			t.Errorf("profile step of %d days %s, want %s (a divisor of an hour)", days, got, want)
		}
	}
}
