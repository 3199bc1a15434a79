package exporter

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/series"
	"github.com/usage-exporter/usage-exporter/exporter/state"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/internal/recorded"
	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// BackfillOptions say what history to write.
type BackfillOptions struct {
	// Config is the live exporter's: the same sources (plain and .gz files
	// their globs match, oldest first), parsers, classification, prices,
	// tiers, caps and duplicate window.
	Config *Config
	// From and To bound the log time written, [From, To). To is also where
	// the lines stop being read.
	From, To time.Time
	// Step is the interval of the samples, as a scrape interval (1m).
	Step time.Duration
	// Out is the directory the TSDB blocks are written to, for Prometheus'
	// storage.tsdb.path (or `promtool tsdb` to move them there).
	Out string
	// Labels are added to every series: the job and instance the live
	// exporter is scraped as, so that history and live data are one series.
	Labels map[string]string
	// StateOut, when set, gets the state file a live exporter started with
	// --state.dir=StateOut continues from: its read positions at the end of
	// what was backfilled and every series' value, so its counters go on
	// from the history's (the seam of a new installation).
	StateOut string
	// RecordedSums also writes the history of the recording rules that sum
	// counters (internal/recorded: the optimizer reads them), as the rules
	// would have recorded them at every step.
	RecordedSums bool
	Progress     io.Writer    // a progress line every few seconds; nil for none
	Logger       *slog.Logger // the invalid lines' log; nil discards
	Now          func() time.Time
}

// BackfillResult is what a backfill read and wrote.
type BackfillResult struct {
	Lines, Invalid, Skipped int64 // Skipped: dated before From
	Reasons                 map[string]int64
	Series                  int
	Samples                 int64
	Blocks                  int
	Newest                  time.Time // the newest line time read
}

// blockSpan is the time a TSDB block holds: a day (Prometheus compacts its
// own 2 h blocks into larger ones; fewer, larger blocks write faster).
const blockSpan = 24 * time.Hour

// Backfill reads the configured sources' files in log time order and writes
// their series, one sample per series per step, as TSDB blocks: the series
// the live exporter serves, dated by log time.
func Backfill(ctx context.Context, o BackfillOptions) (BackfillResult, error) {
	res := BackfillResult{Reasons: map[string]int64{}}
	if o.Step <= 0 {
		o.Step = time.Minute
	}
	if !o.To.After(o.From) {
		return res, fmt.Errorf("backfill: --to (%s) must be after --from (%s)", o.To, o.From)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cfg := *o.Config
	cfg.Rollups.Days = 0 // the rollups are the live exporter's; history goes to Prometheus
	cfg.Logs.MaxClockSkew = time.Minute
	cfg.Logs.MaxLineAge = o.To.Sub(o.From) + 48*time.Hour
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	// The clock of the series and of the checks is the step being filled.
	clock := o.From.Truncate(o.Step)
	now := func() time.Time { return clock }
	m := NewMetrics(prometheus.NewRegistry(), cfg.Metrics, now)
	m.initLines()
	prices, err := pricing.Load(cfg.Pricing)
	if err != nil {
		return res, err
	}
	in, err := newIngester(&cfg, m, prices, plans.NewResolver(cfg.Plans, cfg.Quota.TierSources, nil), quota.NewEmbedded(nil), carried{}, now)
	if err != nil {
		return res, err
	}
	d, err := newDecoder(&cfg, in.attr.classifier.Services(), o.Logger)
	if err != nil {
		return res, err
	}
	d.now = func() time.Time { return o.To }
	var streams []*stream
	for i, src := range cfg.Logs.Sources {
		st, err := openStream(i, src.Path)
		if err != nil {
			return res, err
		}
		defer st.close()
		streams = append(streams, st)
	}
	w := &blockWriter{dir: o.Out, extra: o.Labels, sums: o.RecordedSums}
	defer w.abort()
	began, progress := time.Now(), time.Now()
	for step := clock.Add(o.Step); ; step = step.Add(o.Step) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		for _, st := range streams {
			if err := st.feed(d, in, step, o, &res); err != nil {
				return res, err
			}
		}
		// The live exporter hands user labels over at every checkpoint;
		// the backfill once an hour of log time (their counts decay daily).
		if step.Truncate(time.Hour) != clock.Truncate(time.Hour) {
			in.rebalance(step)
		}
		clock = step
		if err := w.write(ctx, step, m, &res); err != nil {
			return res, err
		}
		if o.Progress != nil && time.Since(progress) > 2*time.Second {
			progress = time.Now()
			fmt.Fprintf(o.Progress, "backfill: %d lines, %.0f lines/s, log time %s\n", res.Lines,
				float64(res.Lines)/time.Since(began).Seconds(), step.UTC().Format(time.RFC3339))
		}
		// Samples go on to To once the files are read, as scrapes of an
		// idle exporter would: the series are current at To.
		if !step.Before(o.To) {
			break
		}
	}
	if err := w.flush(ctx, &res); err != nil {
		return res, err
	}
	res.Series = m.Lines.Snapshot().Len()
	if o.StateOut != "" {
		if err := writeSeam(in, o.StateOut, streams, o.Now()); err != nil {
			return res, err
		}
	}
	return res, nil
}

// writeSeam writes the state file a live exporter continues from: the end
// of every plain file read (compressed files are rotated history the live
// exporter does not read), and every series' value.
func writeSeam(in *ingester, dir string, streams []*stream, now time.Time) error {
	for _, st := range streams {
		for _, p := range st.ends {
			in.positions[p.FileID] = p
		}
	}
	releaseAll(in.count.m.Lines)
	snap := in.snapshot(now)
	sd, err := state.Open(dir)
	if err != nil {
		return err
	}
	defer sd.Close()
	return sd.WriteBytes(stateFile, snap.data)
}

// releaseAll publishes every series with its value, as if a scrape had
// seen each at zero: their history is in Prometheus already.
func releaseAll(set *series.Set) {
	set.Publish(set.Snapshot())
	set.Published().Served()
	set.Publish(set.Snapshot())
}

// stream is one source's files, read in order, a batch of lines at a time.
type stream struct {
	source  int
	pattern string
	files   []string
	cur     int
	f       *os.File
	r       *bufio.Reader
	offset  int64
	pending *eventBatch // decoded, not all ingested
	next    int         // the first event of pending not ingested
	ends    []tailer.Position
	stopped bool
}

// openStream lists the files of a source's glob and their rotations
// (name.1, name.2.gz, name-20251001.gz: what logrotate leaves, compressed
// or not), the oldest (by modification time) first.
func openStream(source int, pattern string) (*stream, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	for _, rotated := range []string{pattern + ".*", pattern + "-*"} {
		more, _ := filepath.Glob(rotated)
		files = append(files, more...)
	}
	slices.Sort(files) // a glob can match what a rotation pattern matches
	files = slices.Compact(files)
	mtime := map[string]time.Time{}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		mtime[f] = fi.ModTime()
	}
	sort.SliceStable(files, func(i, j int) bool { return mtime[files[i]].Before(mtime[files[j]]) })
	return &stream{source: source, pattern: pattern, files: files, cur: -1}, nil
}

func (st *stream) close() {
	if st.f != nil {
		st.f.Close()
	}
}

// readBatch reads up to 1 MiB of whole lines; nil at the end of the files.
func (st *stream) readBatch() (*tailer.Batch, error) {
	for {
		if st.r == nil {
			if st.cur+1 >= len(st.files) {
				return nil, nil
			}
			st.cur++
			f, err := os.Open(st.files[st.cur])
			if err != nil {
				return nil, err
			}
			st.f, st.offset = f, 0
			var r io.Reader = f
			if strings.HasSuffix(f.Name(), ".gz") {
				zr, err := gzip.NewReader(f)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f.Name(), err)
				}
				r = zr
			}
			st.r = bufio.NewReaderSize(r, 1<<20)
		}
		var data []byte
		for len(data) < 1<<20 {
			line, err := st.r.ReadSlice('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				data = append(data, line...)
				st.offset += int64(len(line))
			} else if errors.Is(err, bufio.ErrBufferFull) {
				// A line over the buffer: skip it whole (the live reader drops it too).
				for errors.Is(err, bufio.ErrBufferFull) {
					st.offset += int64(len(line))
					line, err = st.r.ReadSlice('\n')
				}
				st.offset += int64(len(line))
				continue
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					return nil, err
				}
				// The end of this file (a last line without \n is not read, as live).
				if !strings.HasSuffix(st.f.Name(), ".gz") {
					if p, err := tailer.PositionOf(st.pattern, st.f.Name(), st.offset); err == nil {
						st.ends = append(st.ends, p)
					}
				}
				st.f.Close()
				st.f, st.r = nil, nil
				break
			}
		}
		if len(data) > 0 {
			return &tailer.Batch{Source: st.source, Data: data}, nil
		}
	}
}

// feed ingests the stream's events dated before step, until its files are
// read or a line at or past To is reached.
func (st *stream) feed(d *decoder, in *ingester, step time.Time, o BackfillOptions, res *BackfillResult) error {
	if st.stopped {
		return nil
	}
	limit, from, to := step.UnixNano(), o.From.UnixNano(), o.To.UnixNano()
	for !st.stopped {
		if st.pending == nil {
			b, err := st.readBatch()
			if err != nil {
				return err
			}
			if b == nil {
				st.stopped = true
				break
			}
			st.pending, st.next = d.decode(b), 0
			eb := st.pending
			res.Invalid += int64(eb.invalid)
			for r, n := range eb.reasons {
				if n > 0 {
					res.Reasons[string(logparse.Reasons[r])] += int64(n)
				}
			}
		}
		eb := st.pending
		i := st.next
		for i < len(eb.events) && eb.events[i].unixNano < limit && eb.events[i].unixNano < to {
			i++
		}
		// Lines dated before From are read (the duplicate window and the
		// caps see them) but not counted.
		lo := st.next
		for lo < i && eb.events[lo].unixNano != 0 && eb.events[lo].unixNano < from {
			lo++
			res.Skipped++
		}
		if i > lo || st.next == 0 {
			sub := *eb
			sub.events = eb.events[lo:i]
			if st.next != 0 {
				sub.invalid, sub.reasons = 0, [logparse.NumReasons]int{}
			}
			sub.retire = false
			in.ingest(&sub)
			res.Lines += int64(i - lo)
		}
		st.next = i
		if i < len(eb.events) {
			if eb.events[i].unixNano >= to {
				st.stopped = true
			}
			break // the rest is dated at or after this step
		}
		if len(eb.events) > 0 {
			if t := time.Unix(0, eb.events[len(eb.events)-1].unixNano); t.After(res.Newest) {
				res.Newest = t
			}
		}
		putEventBatch(eb)
		st.pending = nil
	}
	return nil
}

// blockWriter appends each step's samples to the TSDB block of its day.
type blockWriter struct {
	dir    string
	extra  map[string]string
	sums   bool // write the recorded sums too
	bw     *tsdb.BlockWriter
	app    storage.Appender
	span   int64 // the block's start, unix ms
	series map[series.SampleID]*sampleSeries
	byKey  map[string]*sampleSeries // the recorded sums, by their labels
	aggs   []*sampleSeries
	b      labels.ScratchBuilder
	lastMs int64
}

// sampleSeries is a sample series' labels, rendered once, its reference in
// the current block, and the recorded sum it adds to.
type sampleSeries struct {
	labels labels.Labels
	ref    storage.SeriesRef
	block  int64 // the block ref belongs to
	sum    *sampleSeries
	v      float64 // a recorded sum's value at this step
}

// build renders a series' labels: name, the pairs but those dropped, the
// extra labels.
func (w *blockWriter) build(name string, pairs []string, drop []string) labels.Labels {
	w.b.Reset()
	w.b.Add(model.MetricNameLabel, name)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !slices.Contains(drop, pairs[i]) {
			w.b.Add(pairs[i], pairs[i+1])
		}
	}
	for k, val := range w.extra {
		w.b.Add(k, val)
	}
	w.b.Sort()
	return w.b.Labels()
}

// append appends a sample; a series' first sample in a block after its
// first step is preceded by a 0 one step before, as the live exporter
// first shows a new series: increase() counts its first lines.
func (w *blockWriter) append(ss *sampleSeries, ms int64, v float64, isNew bool, res *BackfillResult) error {
	var err error
	if ss.block != w.span {
		ss.ref, ss.block = 0, w.span
	}
	if isNew && w.lastMs > w.span {
		if ss.ref, err = w.app.Append(ss.ref, ss.labels, w.lastMs, 0); err != nil {
			return err
		}
		res.Samples++
	}
	ss.ref, err = w.app.Append(ss.ref, ss.labels, ms, v)
	res.Samples++
	return err
}

func (w *blockWriter) write(ctx context.Context, step time.Time, m *Metrics, res *BackfillResult) error {
	ms := step.UnixMilli()
	if start := step.Add(-time.Millisecond).Truncate(blockSpan).UnixMilli(); w.bw == nil || start != w.span {
		if err := w.flush(ctx, res); err != nil {
			return err
		}
		bw, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), w.dir, blockSpan.Milliseconds())
		if err != nil {
			return err
		}
		w.bw, w.app, w.span = bw, bw.Appender(ctx), start
	}
	if w.series == nil {
		w.series, w.byKey = map[series.SampleID]*sampleSeries{}, map[string]*sampleSeries{}
	}
	for _, a := range w.aggs {
		a.v = 0
	}
	var newAggs []*sampleSeries
	var err error
	m.Lines.Samples(func(id series.SampleID, name string, pairs func() []string, v float64) {
		if err != nil {
			return
		}
		ss := w.series[id]
		isNew := ss == nil
		if isNew {
			p := pairs()
			ss = &sampleSeries{labels: w.build(name, p, nil), block: -1}
			w.series[id] = ss
			for _, sum := range recorded.Sums {
				if w.sums && sum.Metric == name {
					agg := w.build(sum.Record, p, sum.Without)
					key := agg.String()
					if ss.sum = w.byKey[key]; ss.sum == nil {
						ss.sum = &sampleSeries{labels: agg, block: -1}
						w.byKey[key] = ss.sum
						newAggs = append(newAggs, ss.sum)
					}
				}
			}
		}
		if ss.sum != nil {
			ss.sum.v += v
		}
		err = w.append(ss, ms, v, isNew, res)
	})
	if err != nil {
		return err
	}
	for _, a := range w.aggs {
		if err := w.append(a, ms, a.v, false, res); err != nil {
			return err
		}
	}
	for _, a := range newAggs {
		if err := w.append(a, ms, a.v, true, res); err != nil {
			return err
		}
	}
	w.aggs = append(w.aggs, newAggs...)
	w.lastMs = ms
	return nil
}

func (w *blockWriter) flush(ctx context.Context, res *BackfillResult) error {
	if w.bw == nil {
		return nil
	}
	defer func() { w.bw.Close(); w.bw = nil }()
	if err := w.app.Commit(); err != nil {
		return err
	}
	if _, err := w.bw.Flush(ctx); err != nil {
		return err
	}
	res.Blocks++
	return nil
}

func (w *blockWriter) abort() {
	if w.bw != nil {
		w.app.Rollback()
		w.bw.Close()
	}
}
