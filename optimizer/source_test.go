package optimizer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

// The profile's query: the requests summed by service (all llm here).
const requestsByService = "sum by (api_service) (usage_requests_total)"

func (q *sumQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	q.recordingQuerier.QueryRange(ctx, query, start, end, step)
	if query != requestsByService {
		return nil, nil
	}
	var out []model.SamplePair
	for t := start; !t.After(end); t = t.Add(step) {
		if v, ok := q.valueAt(t); ok {
			out = append(out, model.SamplePair{Timestamp: model.TimeFromUnixNano(t.UnixNano()), Value: v})
		}
	}
	return model.Matrix{{Metric: model.Metric{"api_service": "llm"}, Values: out}}, nil
}

func (q *sumQuerier) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	q.recordingQuerier.Query(ctx, query, ts)
	if query != requestsByService && query != cumulative("usage_requests_total", "api_service") {
		return nil, nil
	}
	v, ok := q.valueAt(ts)
	if !ok {
		return nil, nil
	}
	m := model.Metric{"api_service": "llm"}
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
			if llm := s.HourlyByService["llm"]; len(llm) != 24 || llm[13] != 50 {
				t.Errorf("llm's own profile %v", llm)
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

// An exporter without rollups (an older version, or rollups.days: 0)
// answers 404 for the window: its totals since start are read instead.
func TestExporterSourceWithoutRollups(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "# TYPE usage_requests_total counter\nusage_requests_total{api_service=\"search\",code=\"200\",method=\"GET\",route=\"/s\"} 12\n"+
			"# TYPE usage_exporter_log_first_timestamp_seconds gauge\nusage_exporter_log_first_timestamp_seconds 1.7e9\n"+
			"# TYPE usage_exporter_log_last_timestamp_seconds gauge\nusage_exporter_log_last_timestamp_seconds 1.7000036e9\n")
	}))
	defer srv.Close()
	s, err := (&ExporterSource{URL: srv.URL + "/metrics"}).Snapshot(context.Background(), 7, time.Unix(1.7e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !s.SinceStart || s.TotalCalls() != 12 || s.Window != time.Hour || s.Missing["hourly"] == "" {
		t.Errorf("since start %v, %v calls, window %s, missing %v", s.SinceStart, s.TotalCalls(), s.Window, s.Missing)
	}
}
