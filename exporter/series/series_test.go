package series

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2025, 10, 24, 12, 0, 0, 0, time.UTC)} }

func render(t *testing.T, snap *Snapshot, format Format) string {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := snap.Write(w, format); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// A series appears at zero until a scrape has seen it there; then its
// value shows, and counters only grow.
func TestNewSeriesShowZeroUntilScraped(t *testing.T) {
	c := newClock()
	s := NewSet(c.now)
	reqs := s.NewCounter("x_requests_total", "Requests.", "code")
	reqs.With("200").Add(3)
	s.Publish(s.Snapshot())
	if got := render(t, s.Published(), Text); !strings.Contains(got, `x_requests_total{code="200"} 0`+"\n") {
		t.Fatalf("a new series is not at zero first:\n%s", got)
	}
	// Not scraped yet: still zero in the next snapshot.
	reqs.With("200").Add(1)
	s.Publish(s.Snapshot())
	if v, _ := s.Published().Value(reqs, "200"); v != 0 {
		t.Fatalf("released before any scrape: %v", v)
	}
	s.Published().Served()
	reqs.With("500").Inc() // born now: zero in the next snapshot
	s.Publish(s.Snapshot())
	got := render(t, s.Published(), Text)
	if !strings.Contains(got, `x_requests_total{code="200"} 4`+"\n") || !strings.Contains(got, `x_requests_total{code="500"} 0`+"\n") {
		t.Fatalf("after a scrape:\n%s", got)
	}
	// A hold makes a scrape alone not enough.
	s.SetHold(time.Minute)
	s.Published().Served()
	s.Publish(s.Snapshot())
	if v, _ := s.Published().Value(reqs, "500"); v != 0 {
		t.Errorf("released within the hold: %v", v)
	}
	s.Published().Served()
	c.advance(time.Minute)
	s.Publish(s.Snapshot())
	if v, _ := s.Published().Value(reqs, "500"); v != 1 {
		t.Errorf("not released after the hold: %v", v)
	}
}

// Dropped series leave the exposition; the series a scrape saw stay
// released and those it did not see stay at zero, whatever went before
// them; the same labels come back as a new series at zero.
func TestDropKeepsWhatWasSeen(t *testing.T) {
	c := newClock()
	s := NewSet(c.now)
	reqs := s.NewCounter("x_user_requests_total", "Requests.", "user", "api_service")
	for _, u := range []string{"a", "b", "c"} {
		reqs.With(u, "llm").Add(2)
	}
	s.Publish(s.Snapshot())
	s.Published().Served()
	reqs.With("d", "llm").Add(5) // not seen yet
	s.Publish(s.Snapshot())      // releases a, b, c
	old := s.Published()         // a, b, c and d at zero
	if n := reqs.Drop("user", func(u string) bool { return u == "a" || u == "b" }); n != 2 {
		t.Fatalf("dropped %d series, want 2", n)
	}
	reqs.With("e", "llm").Inc()
	s.Publish(s.Snapshot())
	got := render(t, s.Published(), Text)
	for _, want := range []string{`{api_service="llm",user="c"} 2` + "\n", `{api_service="llm",user="d"} 0` + "\n",
		`{api_service="llm",user="e"} 0` + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, `user="a"`) || strings.Contains(got, `user="b"`) {
		t.Errorf("dropped series still exposed:\n%s", got)
	}
	// A scrape of the older snapshot releases d, not e born after it.
	old.Served()
	reqs.With("a", "llm").Add(7) // back, as a new series
	s.Publish(s.Snapshot())
	for _, tc := range []struct {
		user string
		want float64
	}{{"c", 2}, {"d", 5}, {"e", 0}, {"a", 0}} {
		if v, ok := s.Published().Value(reqs, tc.user, "llm"); !ok || v != tc.want {
			t.Errorf("user %s: %v (%v), want %v", tc.user, v, ok, tc.want)
		}
	}
}

// Releasable says when a snapshot would release series shown at zero: not
// before a scrape saw them, nor within the hold, nor once released.
func TestReleasable(t *testing.T) {
	c := newClock()
	s := NewSet(c.now)
	s.SetHold(time.Minute)
	reqs := s.NewCounter("x_requests_total", "Requests.", "code")
	if s.Releasable() {
		t.Error("releasable with nothing")
	}
	reqs.With("200").Inc()
	s.Publish(s.Snapshot())
	if s.Releasable() {
		t.Error("releasable before a scrape")
	}
	s.Published().Served()
	if s.Releasable() {
		t.Error("releasable within the hold")
	}
	c.advance(time.Minute)
	if !s.Releasable() {
		t.Error("not releasable after a scrape and the hold")
	}
	s.Publish(s.Snapshot())
	if s.Releasable() {
		t.Error("still releasable once released")
	}
}

// Checkpoints publish faster than Prometheus scrapes: a scrape of any
// snapshot that showed a series at zero releases it, even once newer
// snapshots have replaced that one unscraped (before, a series born while
// checkpoints outpaced scrapes could stay at zero for good).
func TestReleaseOutlivesThePublishedSnapshot(t *testing.T) {
	c := newClock()
	s := NewSet(c.now)
	reqs := s.NewCounter("x_requests_total", "Requests.", "code")
	reqs.With("200").Add(3)
	s.Publish(s.Snapshot())
	scraped := s.Published()
	s.Publish(s.Snapshot()) // a checkpoint before the scrape ends
	reqs.With("500").Inc()
	scraped.Served()
	s.Publish(s.Snapshot()) // and another after it
	if v, _ := s.Published().Value(reqs, "200"); v != 3 {
		t.Fatalf("a series scraped at zero is still held: %v", v)
	}
	if v, _ := s.Published().Value(reqs, "500"); v != 0 {
		t.Fatalf("a series the scrape did not see is released: %v", v)
	}
	// A slow scrape of an older snapshot ending last does not hold back.
	newer := s.Published()
	newer.Served()
	scraped.Served()
	s.Publish(s.Snapshot())
	if v, _ := s.Published().Value(reqs, "500"); v != 1 {
		t.Errorf("released series went back to zero: %v", v)
	}
}

// randomSet builds families with awkward label values and random
// observations, and releases every series.
func randomSet(rng *rand.Rand, c *clock) *Set {
	s := NewSet(c.now)
	values := []string{"a", `quo"te`, `back\slash`, "new\nline", "ünï", "", "/api/v1/users/:id"}
	counter := s.NewCounter("t_cost_dollars_total", "Cost in \"dollars\"\\ by\nservice.", "route", "api_service")
	plain := s.NewCounter("t_events_total", "Events.")
	hist := s.NewHistogram("t_duration_seconds", "Duration.", HistogramOpts{Buckets: []float64{0.005, 0.1, 1, 2.5, 60},
		NativeFactor: 1.1, NativeMaxBuckets: 160}, "api_service")
	classic := s.NewHistogram("t_tokens", "Tokens.", HistogramOpts{Buckets: []float64{100, 500, 2000}}, "model")
	for range 200 {
		counter.With(values[rng.IntN(len(values))], values[rng.IntN(len(values))]).Add(rng.Float64() * 10)
		plain.With().Inc()
		hist.With(values[rng.IntN(3)]).Observe(math.Exp(rng.NormFloat64()*2 - 3))
		classic.With(values[rng.IntN(3)]).Observe(float64(rng.IntN(5000)))
	}
	hist.With("zero").Observe(0)
	hist.With("neg").Observe(-2)
	s.Publish(s.Snapshot())
	s.Published().Served()
	s.Publish(s.Snapshot())
	return s
}

// The text formats, written from the snapshot, are what expfmt writes for
// the same families gathered through Collect (and so through client_golang).
func TestWriteMatchesExpfmt(t *testing.T) {
	for seed := range uint64(20) {
		s := randomSet(rand.New(rand.NewPCG(seed, 1)), newClock())
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(s)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range []struct {
			ours   Format
			theirs expfmt.Format
		}{{Text, expfmt.NewFormat(expfmt.TypeTextPlain)}, {OpenMetrics, expfmt.NewFormat(expfmt.TypeOpenMetrics)}} {
			var want bytes.Buffer
			enc := expfmt.NewEncoder(&want, format.theirs)
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					t.Fatal(err)
				}
			}
			// expfmt sorts series by label values; ours come in creation order.
			got, exp := sortedLines(render(t, s.Published(), format.ours)), sortedLines(want.String())
			if got != exp {
				t.Fatalf("seed %d, format %d differs:\n%s", seed, format.ours, diff(got, exp))
			}
		}
	}
}

// Protobuf, encoded by hand, decodes to what client_golang gathers from
// Collect: the same families, series (released and held at zero), label
// pairs, values, created timestamps, classic and native buckets.
func TestWriteMatchesClientGolangProtobuf(t *testing.T) {
	for seed := range uint64(20) {
		c := newClock()
		rng := rand.New(rand.NewPCG(seed, 2))
		s := randomSet(rng, c)
		// Series born after the last scrape are held at zero.
		c.advance(1500 * time.Millisecond)
		s.families[0].With("late", "born").Add(3)
		s.families[1].With("late").Observe(0.7)
		s.Publish(s.Snapshot())
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(s)
		want, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := s.Published().Write(bufio.NewWriter(&buf), Protobuf); err != nil {
			t.Fatal(err)
		}
		got := decodeDelimited(t, buf.Bytes())
		if len(got) != len(want) {
			t.Fatalf("seed %d: %d families, client_golang %d", seed, len(got), len(want))
		}
		for i := range got {
			sortMetrics(got[i])
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("seed %d: family %s differs:\nours   %v\ntheirs %v", seed, want[i].GetName(), got[i], want[i])
			}
		}
	}
}

// A Block's gauges are what client_golang writes for the same const
// metrics, in every format.
func TestGaugesMatchClientGolang(t *testing.T) {
	values := []string{"a", `quo"te`, "new\nline", ""}
	reg := prometheus.NewPedanticRegistry()
	desc := prometheus.NewDesc("t_quota_used", "Used \"quota\".", []string{"user", "resource"}, nil)
	var labels []Labels
	var vals []float64
	var metrics []prometheus.Metric
	for i, u := range values {
		for j, r := range []string{"calls", "tokens"} {
			v := float64(i*10+j) + 0.5*float64(j)
			labels, vals = append(labels, NewLabels([]string{"user", "resource"}, []string{u, r})), append(vals, v)
			metrics = append(metrics, prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, u, r))
		}
	}
	reg.MustRegister(constCollector{desc, metrics})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	write := func(format Format) []byte {
		var buf bytes.Buffer
		wr := NewWriter(bufio.NewWriter(&buf), format)
		wr.Family("t_quota_used", "Used \"quota\".", Gauge)
		for i := range labels {
			wr.Gauge(&labels[i], vals[i])
		}
		if err := wr.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, f := range []struct {
		ours   Format
		theirs expfmt.Format
	}{{Text, expfmt.NewFormat(expfmt.TypeTextPlain)}, {OpenMetrics, expfmt.NewFormat(expfmt.TypeOpenMetrics)}} {
		var want bytes.Buffer
		if err := expfmt.NewEncoder(&want, f.theirs).Encode(mfs[0]); err != nil {
			t.Fatal(err)
		}
		if got, exp := sortedLines(string(write(f.ours))), sortedLines(want.String()); got != exp {
			t.Errorf("format %d differs:\n%s", f.ours, diff(got, exp))
		}
	}
	got := decodeDelimited(t, write(Protobuf))
	sortMetrics(got[0])
	if !proto.Equal(got[0], mfs[0]) {
		t.Errorf("protobuf differs:\nours   %v\ntheirs %v", got[0], mfs[0])
	}
}

type constCollector struct {
	desc    *prometheus.Desc
	metrics []prometheus.Metric
}

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.metrics {
		ch <- m
	}
}

func decodeDelimited(t *testing.T, data []byte) []*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(bytes.NewReader(data), expfmt.NewFormat(expfmt.TypeProtoDelim))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("decoding our protobuf: %v", err)
			}
			return out
		}
		out = append(out, mf)
	}
}

// sortMetrics orders a family's metrics by label values, as Gather does.
func sortMetrics(mf *dto.MetricFamily) {
	values := func(m *dto.Metric) []string {
		var v []string
		for _, l := range m.GetLabel() {
			v = append(v, l.GetValue())
		}
		return v
	}
	slices.SortStableFunc(mf.Metric, func(a, b *dto.Metric) int { return slices.Compare(values(a), values(b)) })
}

// sortedLines sorts the samples within each family (whose lines stay
// together after its # lines) so that the order of series does not count.
func sortedLines(s string) string {
	var out, block []string
	flush := func() {
		slices.Sort(block)
		out = append(out, block...)
		block = block[:0]
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if strings.HasPrefix(l, "#") {
			flush()
			out = append(out, l)
			continue
		}
		block = append(block, l)
	}
	flush()
	return strings.Join(out, "\n")
}

func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  ours   %q\n  expfmt %q", i, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines against %d", len(al), len(bl))
}

// Native buckets are client_golang's: the same observations in a
// client_golang native histogram give the same schema, zero bucket, spans
// and deltas, and the same classic buckets.
func TestNativeBucketsMatchClientGolang(t *testing.T) {
	for _, tc := range []struct {
		name   string
		factor float64
		max    int
		obs    func(rng *rand.Rand) float64
	}{
		{"latency", 1.1, 160, func(rng *rand.Rand) float64 { return math.Exp(rng.NormFloat64()*1.5 - 2) }},
		{"halving", 1.1, 20, func(rng *rand.Rand) float64 { return math.Exp(rng.NormFloat64() * 4) }},
		{"signs and zero", 2, 0, func(rng *rand.Rand) float64 { return float64(rng.IntN(7) - 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 7))
			buckets := []float64{0.01, 0.1, 1, 10}
			theirs := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: buckets,
				NativeHistogramBucketFactor: tc.factor, NativeHistogramMaxBucketNumber: uint32(tc.max)})
			s := NewSet(newClock().now)
			ours := s.NewHistogram("h", "h", HistogramOpts{Buckets: buckets, NativeFactor: tc.factor, NativeMaxBuckets: tc.max}).With()
			for range 5000 {
				v := tc.obs(rng)
				theirs.Observe(v)
				ours.Observe(v)
			}
			s.Publish(s.Snapshot())
			s.Published().Served()
			s.Publish(s.Snapshot())
			var a, b dto.Metric
			if err := theirs.Write(&a); err != nil {
				t.Fatal(err)
			}
			m := collectOne(t, s)
			if err := m.Write(&b); err != nil {
				t.Fatal(err)
			}
			a.Histogram.CreatedTimestamp, b.Histogram.CreatedTimestamp = nil, nil
			if tc.name == "halving" {
				// client_golang halves once per observation over the bound, ours
				// until within it: compare what both must agree on.
				if a.Histogram.GetSchema() < b.Histogram.GetSchema() || b.Histogram.GetSampleCount() != a.Histogram.GetSampleCount() ||
					len(b.Histogram.PositiveDelta) > tc.max+2 {
					t.Fatalf("halving: ours schema %d with %d buckets, theirs %d", b.Histogram.GetSchema(),
						len(b.Histogram.PositiveDelta), a.Histogram.GetSchema())
				}
				return
			}
			if !proto.Equal(a.Histogram, b.Histogram) {
				t.Fatalf("histograms differ:\nclient_golang %v\nours          %v", a.Histogram, b.Histogram)
			}
		})
	}
}

func collectOne(t *testing.T, s *Set) prometheus.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 10)
	s.Collect(ch)
	close(ch)
	var out []prometheus.Metric
	for m := range ch {
		out = append(out, m)
	}
	if len(out) != 1 {
		t.Fatalf("%d metrics", len(out))
	}
	return out[0]
}

// Encode and Restore give back every series, value, creation time and
// which series were still shown at zero.
func TestEncodeRestoreRoundTrip(t *testing.T) {
	c := newClock()
	s := randomSet(rand.New(rand.NewPCG(3, 3)), c)
	fam := s.families[0] // t_cost_dollars_total
	c.advance(time.Hour)
	fam.With("born", "late").Add(2) // shown at zero in the snapshot encoded
	snap := s.Snapshot()
	data := snap.Encode(nil)

	c2 := newClock()
	r := NewSet(c2.now)
	r.NewCounter("t_cost_dollars_total", "Cost in \"dollars\"\\ by\nservice.", "route", "api_service")
	r.NewCounter("t_events_total", "Events.")
	r.NewHistogram("t_duration_seconds", "Duration.", HistogramOpts{Buckets: []float64{0.005, 0.1, 1, 2.5, 60},
		NativeFactor: 1.1, NativeMaxBuckets: 160}, "api_service")
	// t_tokens is not registered: skipped.
	res, err := r.Restore(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || res.Skipped[0] != "t_tokens" {
		t.Errorf("skipped %v", res.Skipped)
	}
	restored := r.Snapshot()
	for i, fs := range restored.fams {
		orig := snap.family(s.families[slices.IndexFunc(s.families, func(f *Family) bool { return f.name == fs.f.name })])
		if len(fs.series) != len(orig.series) || fs.released != orig.released {
			t.Fatalf("%s: %d series, %d released; want %d, %d", fs.f.name, len(fs.series), fs.released, len(orig.series), orig.released)
		}
		for j, se := range fs.series {
			o := orig.series[j]
			if !slices.Equal(se.values, o.values) || se.created != o.created {
				t.Fatalf("%s series %d: %v created %d, want %v %d", fs.f.name, j, se.values, se.created, o.values, o.created)
			}
		}
		if !slices.Equal(fs.values, orig.values) {
			t.Errorf("%s values differ", fs.f.name)
		}
		for j := range fs.hists {
			a, b := fs.hists[j], orig.hists[j]
			if !slices.Equal(a.counts, b.counts) || a.sum != b.sum || a.count != b.count || a.schema != b.schema ||
				a.zero != b.zero || !slices.Equal(a.pos.counts, b.pos.counts) || a.pos.first != b.pos.first {
				t.Errorf("%s histogram %d differs", fs.f.name, j)
			}
		}
		_ = i
	}
	// The restored set goes on counting from the values, and the series
	// born late is still held at zero until a scrape.
	r.Publish(restored)
	if v, _ := r.Published().Value(r.families[0], "born", "late"); v != 0 {
		t.Errorf("a series shown at zero came back released: %v", v)
	}
	if _, err := NewSet(nil).Restore(data[:len(data)/2]); err == nil {
		t.Error("a truncated snapshot restored without error")
	}
	if problems, err := testutil.CollectAndLint(r); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// FuzzRestore: any bytes restore or fail, never panic or allocate without
// bound; what restores can be snapshotted and served.
func FuzzRestore(f *testing.F) {
	c := newClock()
	f.Add(randomSet(rand.New(rand.NewPCG(3, 3)), c).Snapshot().Encode(nil))
	f.Add([]byte(magic + "\x01\x00\x0bt_events_total\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewSet(newClock().now)
		r.NewCounter("t_cost_dollars_total", "Cost.", "route", "api_service")
		r.NewCounter("t_events_total", "Events.")
		r.NewHistogram("t_duration_seconds", "Duration.", HistogramOpts{Buckets: []float64{0.005, 0.1, 1, 2.5, 60},
			NativeFactor: 1.1, NativeMaxBuckets: 160}, "api_service")
		if _, err := r.Restore(data); err != nil {
			return
		}
		snap := r.Snapshot()
		r.Publish(snap)
		_ = snap.Encode(nil)
	})
}
