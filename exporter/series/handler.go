package series

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// A Block is a group of families its owner writes at each scrape, beside
// the set's (the quota gauges, computed from the ledger when scraped).
type Block interface {
	WriteTo(wr *Writer)
}

// Handler serves /metrics: the families of base (gathered by
// client_golang), then the set's published snapshot and the blocks', in
// the format the scraper negotiates: Prometheus text, OpenMetrics or
// protobuf (native histograms, created timestamps), written directly (see
// Writer). base must not hold the set's or the blocks' families. A rendered
// snapshot counts as scraped (see Set.Snapshot).
func Handler(base prometheus.Gatherer, set *Set, log *slog.Logger, blocks ...Block) http.Handler {
	return &handler{base: base, set: set, log: log, blocks: blocks}
}

type handler struct {
	base   prometheus.Gatherer
	set    *Set
	log    *slog.Logger
	blocks []Block
}

// Scrapes are compressed at gzip's best speed: about 10x smaller, at a
// sixth of the default level's cost (klauspost/compress at 700 MB/s).
var (
	bufs    = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
	gzips   = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed); return w }}
	writers = sync.Pool{New: func() any { return &Writer{} }}
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
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			h.log.Error("encoding metrics", "family", mf.GetName(), "err", err)
		}
	}
	ours := Protobuf
	switch format.FormatType() {
	case expfmt.TypeTextPlain:
		ours = Text
	case expfmt.TypeOpenMetrics:
		ours = OpenMetrics
	}
	wr := writers.Get().(*Writer)
	wr.Reset(bw, ours)
	if snap != nil {
		snap.WriteTo(wr)
	}
	for _, b := range h.blocks {
		b.WriteTo(wr)
	}
	if err := wr.Close(); err != nil {
		h.log.Debug("writing metrics", "err", err)
	}
	writers.Put(wr)
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
