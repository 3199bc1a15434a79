package optimizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/usage-exporter/usage-exporter/internal/window"
)

// ExporterSource reads the exporter itself, no Prometheus needed: the
// window of days from its rollups (GET /api/v1/window, the last days UTC
// days of log time), and the current quota use (GET /api/v1/quotas/users):
// two compact reads, not the exposition. An exporter without rollups (an
// older version, or rollups.days: 0) gives its totals since it started
// instead, from /metrics.
type ExporterSource struct {
	// URL is the exporter's /metrics; the window is read from the same host.
	URL    string
	Client *http.Client
}

// Name identifies the source in the JSON.
func (e *ExporterSource) Name() string { return "exporter " + e.URL }

// maxExposition bounds what the optimizer reads from the exporter.
const maxExposition = 512 << 20

// Snapshot reads the window of days ending with the newest line's day, and
// the quota use at now.
func (e *ExporterSource) Snapshot(ctx context.Context, days int, now time.Time) (*Snapshot, error) {
	client := e.Client
	if client == nil {
		client = http.DefaultClient
	}
	win, err := e.window(ctx, client, days)
	var s *Snapshot
	switch {
	case errors.Is(err, errNoWindow):
		families, err := e.scrape(ctx, client)
		if err != nil {
			return nil, err
		}
		s = FromFamilies(families, days, now)
	case err != nil:
		return nil, err
	default:
		s = FromWindow(win, days)
		if s.Quotas, err = e.quotas(ctx, client, now); err != nil {
			return nil, err
		}
	}
	s.Source = e.Name()
	return s, nil
}

// quotas reads the current period's use by labelled user; from /metrics
// when the exporter has no /api/v1/quotas/users (an older version).
func (e *ExporterSource) quotas(ctx context.Context, client *http.Client, now time.Time) ([]QuotaUse, error) {
	var resp struct {
		Period struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"period"`
		Users []struct {
			User   string  `json:"user"`
			Tier   string  `json:"tier"`
			Calls  float64 `json:"calls"`
			Tokens float64 `json:"tokens"`
		} `json:"users"`
	}
	switch err := e.getJSON(ctx, client, "/api/v1/quotas/users", "", &resp); {
	case errors.Is(err, errNotFound), errors.Is(err, errGuarded):
		// An older exporter, or the quota API wants an admin's token
		// (auth.oidc): /metrics has the same figures.
		families, err := e.scrape(ctx, client)
		if err != nil {
			return nil, err
		}
		return quotasOf(families, now), nil
	case errors.Is(err, errUnavailable):
		return nil, nil // starting: no checkpoint yet
	case err != nil:
		return nil, err
	}
	qs := quotaSet{start: float64(resp.Period.Start.UnixMilli()) / 1000, end: float64(resp.Period.End.UnixMilli()) / 1000}
	for _, u := range resp.Users {
		qs.add(u.User, u.Tier, "calls", u.Calls)
		qs.add(u.User, u.Tier, "tokens", u.Tokens)
	}
	return qs.list(now), nil
}

func (e *ExporterSource) scrape(ctx context.Context, client *http.Client) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", e.URL, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, maxExposition))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.URL, err)
	}
	return families, nil
}

// errNoWindow: the exporter has no rollups to read.
var errNoWindow = errors.New("the exporter serves no window")

var (
	errNotFound    = errors.New("not found")
	errUnavailable = errors.New("unavailable")
	// errGuarded: the endpoint wants a token (the exporter's auth.oidc).
	errGuarded = errors.New("guarded")
)

// getJSON decodes a JSON endpoint on the host of the exporter's /metrics.
func (e *ExporterSource) getJSON(ctx context.Context, client *http.Client, path, query string, v any) error {
	u, err := url.Parse(e.URL)
	if err != nil {
		return err
	}
	u.Path, u.RawQuery = path, query
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return errNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return errGuarded
	case http.StatusServiceUnavailable:
		return errUnavailable
	default:
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxExposition)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

func (e *ExporterSource) window(ctx context.Context, client *http.Client, days int) (*window.Window, error) {
	var w window.Window
	switch err := e.getJSON(ctx, client, "/api/v1/window", "days="+strconv.Itoa(days), &w); {
	case errors.Is(err, errNotFound):
		return nil, errNoWindow
	case errors.Is(err, errUnavailable):
		return nil, fmt.Errorf("%s: the exporter is starting", e.URL)
	case err != nil:
		return nil, err
	}
	return &w, nil
}

// quotasOf reads the quota gauges.
func quotasOf(families map[string]*dto.MetricFamily, now time.Time) []QuotaUse {
	qs := quotaSet{}
	gauge := func(name string, f func(l map[string]string, v float64)) {
		if mf := families[name]; mf != nil {
			for _, m := range mf.Metric {
				l := make(map[string]string, len(m.Label))
				for _, lp := range m.Label {
					l[lp.GetName()] = lp.GetValue()
				}
				f(l, m.GetGauge().GetValue())
			}
		}
	}
	gauge("usage_quota_period_start_timestamp_seconds", func(_ map[string]string, v float64) { qs.start = v })
	gauge("usage_quota_period_end_timestamp_seconds", func(_ map[string]string, v float64) { qs.end = v })
	gauge("usage_quota_used", func(l map[string]string, v float64) { qs.add(l["user"], l["tier"], l["resource"], v) })
	return qs.list(now)
}

// FromFamilies builds a since-start snapshot from the exporter's metric
// families.
func FromFamilies(families map[string]*dto.MetricFamily, days int, now time.Time) *Snapshot {
	s := newSnapshot(days, now)
	s.SinceStart = true
	each := func(name string, f func(l map[string]string, m *dto.Metric)) {
		mf := families[name]
		if mf == nil {
			return
		}
		for _, m := range mf.Metric {
			l := make(map[string]string, len(m.Label))
			for _, lp := range m.Label {
				l[lp.GetName()] = lp.GetValue()
			}
			f(l, m)
		}
	}
	counter := func(name string, f func(l map[string]string, v float64)) {
		each(name, func(l map[string]string, m *dto.Metric) { f(l, m.GetCounter().GetValue()) })
	}
	gauge := func(name string, f func(l map[string]string, v float64)) {
		each(name, func(l map[string]string, m *dto.Metric) { f(l, m.GetGauge().GetValue()) })
	}

	counter("usage_requests_total", func(l map[string]string, v float64) {
		sv := s.service(l["api_service"])
		ep := s.endpoint(l["route"], l["api_service"])
		sv.Calls += v
		ep.Calls += v
		if code := l["code"]; len(code) == 0 || (code[0] != '2' && code[0] != '3') {
			sv.Errors += v
			ep.Errors += v
		}
		if l["code"] == "408" || l["code"] == "504" {
			sv.Timeouts += v
		}
	})
	latency := buckets{}
	latencyOf := map[string]buckets{}
	each("usage_storage_bytes", func(l map[string]string, m *dto.Metric) {
		if s.StorageBytes == nil {
			s.StorageBytes = map[string]float64{}
		}
		s.StorageBytes[l["volume"]] = m.GetGauge().GetValue()
	})
	each("usage_request_duration_seconds", func(l map[string]string, m *dto.Metric) {
		h := m.GetHistogram()
		sv := s.service(l["api_service"])
		if latencyOf[l["api_service"]] == nil {
			latencyOf[l["api_service"]] = buckets{}
		}
		latencyOf[l["api_service"]].add(h)
		ep := s.endpoint(l["route"], l["api_service"])
		sv.LatencySum += h.GetSampleSum()
		sv.LatencyCount += float64(h.GetSampleCount())
		ep.LatencySum += h.GetSampleSum()
		ep.LatencyCount += float64(h.GetSampleCount())
		latency.add(h)
	})
	counter("usage_response_size_bytes_total", func(l map[string]string, v float64) { s.service(l["api_service"]).Bytes += v })
	counter("usage_duplicate_requests_total", func(l map[string]string, v float64) { s.service(l["api_service"]).Duplicates += v })
	counter("usage_egress_cost_dollars_total", func(l map[string]string, v float64) { s.service(l["api_service"]).Egress += v })
	counter("usage_cost_dollars_total", func(l map[string]string, v float64) {
		sv := s.service(l["api_service"])
		sv.Cost += v
		sv.ModelCost[l["model"]] += v
		if l["model"] != "" {
			s.model(l["model"]).Cost += v
		}
	})
	counter("usage_llm_tokens_total", func(l map[string]string, v float64) { s.model(l["model"]).Tokens[l["direction"]] += v })
	counter("usage_llm_requests_total", func(l map[string]string, v float64) {
		m := s.model(l["model"])
		m.Calls += v
		if l["status"] == "failure" {
			m.Failures += v
		}
	})
	each("usage_llm_request_tokens", func(l map[string]string, m *dto.Metric) {
		buckets(s.model(l["model"]).PromptTokens).add(m.GetHistogram())
	})
	counter("usage_exporter_unpriced_requests_total", func(l map[string]string, v float64) { s.Unpriced[l["reason"]] += v })
	counter("usage_user_requests_total", func(l map[string]string, v float64) {
		u := s.user(l["user"], l["tier"])
		u.Calls += v
		u.ByService[l["api_service"]] += v
	})
	counter("usage_user_cost_dollars_total", func(l map[string]string, v float64) { s.user(l["user"], l["tier"]).Cost += v })
	counter("usage_user_tokens_total", func(l map[string]string, v float64) { s.user(l["user"], l["tier"]).Tokens += v })
	counter("usage_org_requests_total", func(l map[string]string, v float64) { s.org(l["org"]).Calls += v })
	counter("usage_org_cost_dollars_total", func(l map[string]string, v float64) { s.org(l["org"]).Cost += v })
	s.countLabelledUsers()
	s.Quotas = quotasOf(families, now)

	s.averageLatency()
	s.Latency.P50, s.Latency.P95, s.Latency.P99 = latency.quantile(0.5), latency.quantile(0.95), latency.quantile(0.99)
	for name, b := range latencyOf {
		sv := s.service(name)
		sv.P50, sv.P95, sv.P99 = b.quantile(0.5), b.quantile(0.95), b.quantile(0.99)
	}

	// The counters cover the log time from the oldest to the newest line
	// read since start; without timestamps, the exporter's uptime.
	var first, last float64
	gauge("usage_exporter_log_first_timestamp_seconds", func(_ map[string]string, v float64) {
		if v > 0 && (first == 0 || v < first) {
			first = v
		}
	})
	gauge("usage_exporter_log_last_timestamp_seconds", func(_ map[string]string, v float64) { last = math.Max(last, v) })
	var started float64
	gauge("process_start_time_seconds", func(_ map[string]string, v float64) { started = v })
	switch {
	case first > 0 && last > first:
		s.Start, s.End = unixTime(first), unixTime(last)
	case started > 0:
		s.Start, s.End = unixTime(started), now
	default:
		s.Start, s.End = now, now
	}
	s.Window = s.End.Sub(s.Start)
	reason := "the exporter source has totals since the exporter started, not a time series: set --prometheus.url"
	s.Missing["hourly"] = reason
	s.Missing["daily"] = reason
	if s.Window <= 0 {
		s.Missing["window"] = "the exporter reports no log time span yet"
	}
	if s.TotalCalls() == 0 {
		s.Missing["requests"] = "the exporter has counted no requests yet"
	}
	return s
}

// unixTime reads a timestamp gauge; log times have millisecond precision.
func unixTime(sec float64) time.Time {
	return time.UnixMilli(int64(math.Round(sec * 1000))).UTC()
}

// buckets merges classic histogram buckets: upper bound -> cumulative count.
type buckets map[float64]float64

func (b buckets) add(h *dto.Histogram) {
	for _, bk := range h.GetBucket() {
		if !math.IsInf(bk.GetUpperBound(), 1) { // the text format lists +Inf; protobuf does not
			b[bk.GetUpperBound()] += float64(bk.GetCumulativeCount())
		}
	}
	b[math.Inf(1)] += float64(h.GetSampleCount())
}

// quantile interpolates linearly within the bucket that holds the q-th
// observation, as PromQL's histogram_quantile does; NaN without data.
func (b buckets) quantile(q float64) float64 {
	bounds := make([]float64, 0, len(b))
	for le := range b {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) < 2 || b[math.Inf(1)] == 0 {
		return math.NaN()
	}
	total := b[math.Inf(1)]
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, le := range bounds {
		c := b[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				// Beyond the highest finite bucket: its bound is all we know.
				return bounds[len(bounds)-2]
			}
			if c == prevCount {
				return le
			}
			return prevBound + (le-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = le, c
	}
	return bounds[len(bounds)-2]
}
