package series

import (
	"bufio"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Handler serves /metrics: the families of base (gathered by
// client_golang) and the set's published snapshot, in the format the
// scraper negotiates: Prometheus text and OpenMetrics written from the
// snapshot directly, protobuf (native histograms, created timestamps)
// through client_golang. base must not hold the set. A rendered snapshot
// counts as scraped (see Set.Snapshot).
func Handler(base prometheus.Gatherer, set *Set, log *slog.Logger) http.Handler {
	return &handler{base: base, set: set, log: log}
}

type handler struct {
	base prometheus.Gatherer
	set  *Set
	log  *slog.Logger
}

var (
	bufs  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
	gzips = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	deadline := scrapeDeadline(r.Header, time.Now())
	mfs, err := h.base.Gather()
	if err != nil {
		// As promhttp's ContinueOnError: serve what was gathered, log the rest.
		h.log.Error("gathering metrics", "err", err)
	}
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
	snap := h.set.Published()
	header := w.Header()
	header.Set("Content-Type", string(format))
	var out io.Writer = w
	var gz *gzip.Writer
	if gzipAccepted(r.Header) {
		header.Set("Content-Encoding", "gzip")
		header.Add("Vary", "Accept-Encoding")
		gz = gzips.Get().(*gzip.Writer)
		gz.Reset(w)
		defer gzips.Put(gz)
		out = gz
	}
	bw := bufs.Get().(*bufio.Writer)
	bw.Reset(out)
	defer bufs.Put(bw)
	enc := expfmt.NewEncoder(bw, format)
	encode := func(fams []*dto.MetricFamily) {
		for _, mf := range fams {
			if err := enc.Encode(mf); err != nil {
				h.log.Error("encoding metrics", "family", mf.GetName(), "err", err)
			}
		}
	}
	switch format.FormatType() {
	case expfmt.TypeTextPlain, expfmt.TypeOpenMetrics:
		encode(mfs)
		if snap != nil {
			ours := Text
			if format.FormatType() == expfmt.TypeOpenMetrics {
				ours = OpenMetrics
			}
			if err := snap.Write(bw, ours); err != nil {
				h.log.Debug("writing metrics", "err", err)
			}
		}
	default:
		encode(mfs)
		if snap != nil {
			reg := prometheus.NewRegistry()
			reg.MustRegister(snapshotCollector{snap})
			ours, err := reg.Gather()
			if err != nil {
				h.log.Error("gathering series", "err", err)
			}
			encode(ours)
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		_ = closer.Close() // OpenMetrics' # EOF
	}
	err = bw.Flush()
	if gz != nil && err == nil {
		err = gz.Close()
	}
	// Only a scrape that got the whole snapshot, in time for the scraper to
	// keep it, saw its new series at zero.
	if err == nil && snap != nil && r.Context().Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
		snap.Served()
	}
}

// scrapeDeadline is when a Prometheus scrape started at start gives up,
// less a fifth for the transfer, from the timeout Prometheus sends; zero
// when it sends none.
func scrapeDeadline(h http.Header, start time.Time) time.Time {
	secs, err := strconv.ParseFloat(h.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64)
	if err != nil || !(secs > 0) {
		return time.Time{}
	}
	return start.Add(time.Duration(secs * 0.8 * float64(time.Second)))
}

// snapshotCollector collects one snapshot, unchecked (the families are
// described by the set).
type snapshotCollector struct{ snap *Snapshot }

func (snapshotCollector) Describe(chan<- *prometheus.Desc) {}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) { c.snap.Collect(ch) }

// gzipAccepted reports whether the client takes gzip (with a q above 0).
func gzipAccepted(h http.Header) bool {
	for _, part := range strings.Split(h.Get("Accept-Encoding"), ",") {
		enc, param, _ := strings.Cut(part, ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(param), "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}
