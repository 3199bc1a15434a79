package series

import (
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The handler serves the base registry's families and the snapshot's in
// each negotiated format: OpenMetrics ends in one # EOF, gzip when asked,
// protobuf with native buckets and created timestamps.
func TestHandlerFormats(t *testing.T) {
	s := randomSet(rand.New(rand.NewPCG(5, 5)), newClock())
	base := prometheus.NewRegistry()
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "t_up", Help: "Up."})
	up.Set(1)
	base.MustRegister(up)
	h := Handler(base, s, slog.New(slog.DiscardHandler))
	get := func(accept string, gz bool) (string, string) {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept", accept)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := io.Reader(rec.Body)
		if rec.Header().Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(rec.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		} else if gz {
			t.Errorf("gzip asked, not given")
		}
		data, _ := io.ReadAll(body)
		return rec.Header().Get("Content-Type"), string(data)
	}
	ct, text := get("text/plain;version=0.0.4", true)
	if !strings.HasPrefix(ct, "text/plain") || !strings.Contains(text, "t_up 1\n") || !strings.Contains(text, "# TYPE t_events_total counter\nt_events_total 200\n") {
		t.Errorf("text (%s):\n%s", ct, text)
	}
	ct, om := get("application/openmetrics-text;version=1.0.0", false)
	if !strings.HasPrefix(ct, "application/openmetrics-text") || strings.Count(om, "# EOF\n") != 1 || !strings.HasSuffix(om, "# EOF\n") ||
		!strings.Contains(om, "t_events_total 200.0\n") || !strings.Contains(om, "# TYPE t_events counter\n") {
		t.Errorf("OpenMetrics (%s):\n%s", ct, om)
	}
	ct, pb := get("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", true)
	dec := expfmt.NewDecoder(strings.NewReader(pb), expfmt.NewFormat(expfmt.TypeProtoDelim))
	found := map[string]bool{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		found[mf.GetName()] = true
		if mf.GetName() == "t_duration_seconds" {
			hist := mf.Metric[0].GetHistogram()
			if hist.GetSchema() != 3 || len(hist.GetPositiveSpan()) == 0 || hist.GetCreatedTimestamp() == nil || len(hist.GetBucket()) != 5 {
				t.Errorf("protobuf histogram without native buckets or created timestamp: %v", hist)
			}
		}
	}
	if !strings.Contains(ct, "protobuf") || !found["t_up"] || !found["t_duration_seconds"] || !found["t_events_total"] {
		t.Errorf("protobuf (%s) families %v", ct, found)
	}
}

// A scrape that breaks off has not seen the new series at zero.
func TestBrokenScrapeIsNotServed(t *testing.T) {
	s := NewSet(newClock().now)
	s.NewCounter("t_total", "T.").With().Inc()
	s.Publish(s.Snapshot())
	h := Handler(prometheus.NewRegistry(), s, slog.New(slog.DiscardHandler))
	h.ServeHTTP(failingWriter{httptest.NewRecorder()}, httptest.NewRequest("GET", "/metrics", nil))
	if s.Published().served.Load() {
		t.Error("a scrape whose writes failed counts as served")
	}
	// Prometheus gave up (its connection closed), or the scrape ended past
	// the timeout Prometheus sent: it kept nothing.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil).WithContext(gone))
	late := httptest.NewRequest("GET", "/metrics", nil)
	late.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "0.000000001")
	h.ServeHTTP(httptest.NewRecorder(), late)
	if s.Published().served.Load() {
		t.Error("a scrape Prometheus abandoned counts as served")
	}
	inTime := httptest.NewRequest("GET", "/metrics", nil)
	inTime.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	h.ServeHTTP(httptest.NewRecorder(), inTime)
	if !s.Published().served.Load() {
		t.Error("a whole scrape does not count as served")
	}
}

type failingWriter struct{ *httptest.ResponseRecorder }

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
