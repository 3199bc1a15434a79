package exporter

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/logparse"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// The push path runs in two goroutines, so that parsing and metric updates
// use both cores: the decoder parses lines into compact events, the
// ingester classifies, prices and counts them. Each owns its state alone.

var knownMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"}

// otherMethod is the method label of methods not in knownMethods.
const otherMethod = "other"

// event is one request, decoded. Strings live in the batch's arena, so the
// log data can be reused as soon as the decoder is done with it.
type event struct {
	path        span
	service     int16 // the service the line names, or -1
	method      uint16
	status      uint16
	hasDuration bool
	duration    float64
	size        int64
	unixNano    int64 // 0 when the line had no time
	user        span
	org         span
	tier        span
	cacheKey    span
	// A model call: the line names a model or carries tokens or a cost.
	model     span
	tokens    pricing.Usage
	hasTokens bool
	cost      float64
	hasCost   bool
}

// modelCall reports whether the event is a model call, to be priced by tokens.
func (ev *event) modelCall() bool { return ev.model.n > 0 || ev.hasTokens || ev.hasCost }

// span is a string in an eventBatch's arena.
type span struct{ off, n uint32 }

// eventBatch is the decoded form of one tailer batch.
type eventBatch struct {
	source  int
	pos     tailer.Position
	retire  bool
	events  []event
	arena   []byte
	invalid int
	reasons [logparse.NumReasons]int // invalid lines by reason: the ingester counts them with the position
	newest  float64                  // newest line time, unix seconds
	oldest  float64                  // oldest line time, unix seconds; 0 for none
}

func (eb *eventBatch) put(b []byte) span {
	s := span{off: uint32(len(eb.arena)), n: uint32(len(b))}
	eb.arena = append(eb.arena, b...)
	return s
}

func (eb *eventBatch) bytes(s span) []byte { return eb.arena[s.off : s.off+s.n] }

var eventBatches = sync.Pool{New: func() any { return &eventBatch{} }}

func getEventBatch() *eventBatch {
	eb := eventBatches.Get().(*eventBatch)
	eb.events, eb.arena = eb.events[:0], eb.arena[:0]
	eb.invalid, eb.newest, eb.oldest, eb.retire = 0, 0, 0, false
	eb.reasons = [logparse.NumReasons]int{}
	return eb
}

func putEventBatch(eb *eventBatch) { eventBatches.Put(eb) }

// decoder parses lines. Not safe for concurrent use.
type decoder struct {
	maxLine     int
	logInterval time.Duration
	skew, age   time.Duration
	limits      LimitsConfig
	labels      LabelsConfig
	hashed      []byte // scratch for hashed label values
	log         *slog.Logger
	services    []string
	sources     []*sourceDecoder
	rec         logparse.Record
	now         func() time.Time
}

type sourceDecoder struct {
	name       string
	parser     logparse.Parser
	lastLog    time.Time
	suppressed int
}

func newDecoder(cfg *Config, services []string, log *slog.Logger) (*decoder, error) {
	d := &decoder{maxLine: cfg.Logs.MaxLineBytes, logInterval: cfg.Logs.InvalidLogInterval, log: log,
		skew: cfg.Logs.MaxClockSkew, age: cfg.Logs.MaxLineAge, limits: cfg.Logs.Limits, labels: cfg.Labels,
		services: services, now: time.Now}
	for _, src := range cfg.Logs.Sources {
		p, err := logparse.New(src.Config)
		if err != nil {
			return nil, err
		}
		d.sources = append(d.sources, &sourceDecoder{name: src.Path, parser: p})
	}
	return d, nil
}

// decode turns the lines of b into events.
func (d *decoder) decode(b *tailer.Batch) *eventBatch {
	eb := getEventBatch()
	eb.source, eb.pos, eb.retire = b.Source, b.Pos, b.Retire
	src := d.sources[b.Source]
	rec := &d.rec
	data := b.Data
	// A line's time must lie between the horizon and now plus the skew:
	// once per batch, not per line, so a long batch gets its read time.
	now := d.now()
	latest, earliest := now.Add(d.skew), now.Add(-d.age)
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			nl = len(data) // the tailer hands on whole lines; be safe anyway
		}
		line := data[:nl]
		data = data[min(nl+1, len(data)):]
		if len(line) > d.maxLine {
			d.reject(eb, src, line, logparse.ErrTooLong)
			continue
		}
		if err := src.parser.Parse(line, rec); err != nil {
			d.reject(eb, src, line, err)
			continue
		}
		if !rec.Time.IsZero() {
			if rec.Time.After(latest) {
				d.reject(eb, src, line, logparse.ErrFuture)
				continue
			}
			if rec.Time.Before(earliest) {
				d.reject(eb, src, line, logparse.ErrPast)
				continue
			}
		}
		if err := d.check(rec); err != nil {
			d.reject(eb, src, line, err)
			continue
		}
		svc := -1
		for i, name := range d.services {
			if len(rec.Service) > 0 && name == string(rec.Service) { // a comparison: no allocation
				svc = i
				break
			}
		}
		eb.events = append(eb.events, event{
			path:        eb.put(rec.Path),
			service:     int16(svc),
			method:      uint16(methodIndex(rec.Method)),
			status:      uint16(rec.Status),
			hasDuration: rec.HasDuration,
			duration:    rec.Duration,
			size:        rec.Size,
			user:        eb.put(d.label(rec.User)),
			org:         eb.put(d.label(rec.Org)),
			tier:        eb.put(rec.Tier),
			cacheKey:    eb.put(rec.CacheKey),
			model:       eb.put(d.label(rec.Model)),
			tokens: pricing.Usage{Input: rec.InputTokens, Output: rec.OutputTokens, CacheRead: rec.CacheReadTokens,
				CacheWrite: rec.CacheWriteTokens, Reasoning: rec.ReasoningTokens},
			hasTokens: rec.HasTokens,
			cost:      rec.Cost,
			hasCost:   rec.HasCost,
		})
		if !rec.Time.IsZero() {
			ns := rec.Time.UnixNano()
			eb.events[len(eb.events)-1].unixNano = ns
			ts := float64(ns/1e6) / 1e3
			if ts > eb.newest {
				eb.newest = ts
			}
			if ts < eb.oldest || eb.oldest == 0 {
				eb.oldest = ts
			}
		}
	}
	if b.Dropped > 0 {
		eb.invalid += b.Dropped
		eb.reasons[logparse.ReasonTooLong.Index()] += b.Dropped
	}
	return eb
}

// Values beyond the configured bounds: impossible, so invalid.
var (
	errBigResponse = &logparse.Error{Reason: logparse.ReasonValue, Msg: "response size beyond logs.limits.max_response_bytes"}
	errManyTokens  = &logparse.Error{Reason: logparse.ReasonValue, Msg: "token count beyond logs.limits.max_tokens"}
	errBigCost     = &logparse.Error{Reason: logparse.ReasonValue, Msg: "cost beyond logs.limits.max_cost"}
	errLongRequest = &logparse.Error{Reason: logparse.ReasonValue, Msg: "request time beyond logs.limits.max_duration"}
	errLongLabel   = &logparse.Error{Reason: logparse.ReasonValue, Msg: "user, organisation or model longer than labels.max_bytes (labels.overlong: reject)"}
)

// check applies the plausibility bounds and the label length bound.
func (d *decoder) check(rec *logparse.Record) error {
	l := &d.limits
	switch {
	case rec.Size > l.MaxResponseBytes:
		return errBigResponse
	case rec.InputTokens > l.MaxTokens || rec.OutputTokens > l.MaxTokens || rec.CacheReadTokens > l.MaxTokens ||
		rec.CacheWriteTokens > l.MaxTokens || rec.ReasoningTokens > l.MaxTokens:
		return errManyTokens
	case rec.HasCost && rec.Cost > l.MaxCost:
		return errBigCost
	case rec.HasDuration && rec.Duration > l.MaxDuration.Seconds():
		return errLongRequest
	case d.labels.Overlong == OverlongReject && (len(rec.User) > d.labels.MaxBytes || len(rec.Model) > d.labels.MaxBytes ||
		len(rec.Org) > d.labels.MaxBytes):
		return errLongLabel
	}
	return nil
}

// label is a user id or model name as it may become a label value: under
// labels.overlong: hash, a longer one is replaced by its hash.
func (d *decoder) label(v []byte) []byte {
	if len(v) <= d.labels.MaxBytes {
		return v
	}
	sum := sha256.Sum256(v)
	d.hashed = append(d.hashed[:0], "hash:"...)
	return hex.AppendEncode(d.hashed, sum[:8])
}

// reject counts a bad line and logs it, at most once per interval per source.
func (d *decoder) reject(eb *eventBatch, src *sourceDecoder, line []byte, err error) {
	eb.invalid++
	eb.reasons[logparse.ReasonOf(err).Index()]++
	now := d.now()
	if now.Sub(src.lastLog) < d.logInterval {
		src.suppressed++
		return
	}
	const maxShown = 256
	shown := line
	if len(shown) > maxShown {
		shown = shown[:maxShown]
	}
	d.log.Warn("invalid log line", "source", src.name, "err", err, "line", string(shown),
		"suppressed_since_last", src.suppressed)
	src.lastLog, src.suppressed = now, 0
}

func methodIndex(m []byte) int {
	for i, k := range knownMethods {
		if string(m) == k {
			return i
		}
	}
	return len(knownMethods)
}

// decodeLoop is the first stage: tailer batches in, decoded batches out.
// It ends when the tailer closes its channel.
func decodeLoop(t *tailer.Tailer, d *decoder, out chan<- *eventBatch) {
	defer close(out)
	for b := range t.Batches() {
		eb := d.decode(b)
		t.Release(b)
		out <- eb
	}
}
