package series

import (
	"bufio"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Format is an exposition format.
type Format int

// The formats a Writer writes.
const (
	Text        Format = iota // Prometheus text 0.0.4
	OpenMetrics               // OpenMetrics 1.0, without the final # EOF
	Protobuf                  // delimited io.prometheus.client.MetricFamily messages
)

// Gauge is the kind of the families a Block writes (the set keeps none).
const Gauge Kind = 2

// Labels is a label set rendered once for every format, its pairs sorted
// by name.
type Labels struct {
	text  string   // `a="x",b="y"`, escaped, without braces
	pairs []string // name, value, name, value, ...
}

// NewLabels renders the label set names=values.
func NewLabels(names, values []string) Labels {
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	l := Labels{text: labelText(names, values, order), pairs: make([]string, 0, 2*len(names))}
	for _, i := range order {
		l.pairs = append(l.pairs, names[i], values[i])
	}
	return l
}

// Writer writes metric families in one format, without garbage per series:
// the text formats straight from each series' rendered labels, protobuf
// encoded by hand (the tests hold both to expfmt's and client_golang's
// output). A family is begun with Family and ends at the next or at Close.
type Writer struct {
	w      *bufio.Writer
	format Format
	num    []byte
	name   string
	kind   Kind
	open   bool
	fam    []byte // protobuf: the open family's message
	m      []byte // protobuf: one metric's message
	sub    []byte // protobuf: one submessage
}

// NewWriter writes to w in format.
func NewWriter(w *bufio.Writer, format Format) *Writer {
	return &Writer{w: w, format: format}
}

// Reset reuses the writer (and its buffers) for w and format.
func (wr *Writer) Reset(w *bufio.Writer, format Format) {
	wr.w, wr.format, wr.open = w, format, false
}

// Format is the writer's format.
func (wr *Writer) Format() Format { return wr.format }

// Family begins a family of kind; name is the sample name (a counter's ends
// in _total).
func (wr *Writer) Family(name, help string, kind Kind) {
	wr.endFamily()
	wr.name, wr.kind, wr.open = name, kind, true
	if wr.format == Protobuf {
		typ := 0 // COUNTER
		switch kind {
		case Gauge:
			typ = 1
		case Histogram:
			typ = 4
		}
		wr.fam = protowire.AppendTag(wr.fam[:0], 1, protowire.BytesType)
		wr.fam = protowire.AppendString(wr.fam, name)
		wr.fam = protowire.AppendTag(wr.fam, 2, protowire.BytesType)
		wr.fam = protowire.AppendString(wr.fam, help)
		wr.fam = protowire.AppendTag(wr.fam, 3, protowire.VarintType)
		wr.fam = protowire.AppendVarint(wr.fam, uint64(typ))
		return
	}
	family := name
	if wr.format == OpenMetrics && kind == Counter {
		family = strings.TrimSuffix(name, "_total") // the family, whose samples are name_total
	}
	typ := "counter"
	switch kind {
	case Gauge:
		typ = "gauge"
	case Histogram:
		typ = "histogram"
	}
	writeComment(wr.w, "HELP", family, help, wr.format == OpenMetrics)
	writeComment(wr.w, "TYPE", family, typ, false)
}

func (wr *Writer) endFamily() {
	if !wr.open {
		return
	}
	wr.open = false
	if wr.format == Protobuf {
		var n [binaryMaxVarint]byte
		wr.w.Write(protowire.AppendVarint(n[:0], uint64(len(wr.fam))))
		wr.w.Write(wr.fam)
		if cap(wr.fam) > 64<<20 {
			wr.fam = nil // a one-off giant family does not stay in memory
		}
	}
}

const binaryMaxVarint = 10

// Close ends the open family and flushes.
func (wr *Writer) Close() error {
	wr.endFamily()
	return wr.w.Flush()
}

// Gauge writes a sample of a gauge family.
func (wr *Writer) Gauge(l *Labels, v float64) {
	if wr.format != Protobuf {
		wr.num = sample(wr.w, wr.num[:0], wr.name, "", l.text, "", v, wr.format)
		return
	}
	wr.m = wr.appendPairs(wr.m[:0], l.pairs)
	wr.sub = protowire.AppendTag(wr.sub[:0], 1, protowire.Fixed64Type)
	wr.sub = protowire.AppendFixed64(wr.sub, math.Float64bits(v))
	wr.m = appendMessage(wr.m, 2, wr.sub)
	wr.fam = appendMessage(wr.fam, 4, wr.m)
}

// counter writes a counter sample of a series.
func (wr *Writer) counter(f *Family, se *Series, v float64) {
	if wr.format != Protobuf {
		wr.num = sample(wr.w, wr.num[:0], f.name, "", se.labelText, "", v, wr.format)
		return
	}
	wr.m = wr.appendSeriesLabels(wr.m[:0], f, se)
	wr.sub = protowire.AppendTag(wr.sub[:0], 1, protowire.Fixed64Type)
	wr.sub = protowire.AppendFixed64(wr.sub, math.Float64bits(v))
	wr.sub = appendTimestamp(wr.sub, 3, se.created)
	wr.m = appendMessage(wr.m, 3, wr.sub)
	wr.fam = appendMessage(wr.fam, 4, wr.m)
}

// histogram writes a histogram sample of a series (h zero when shown at zero).
func (wr *Writer) histogram(f *Family, se *Series, h *histSnapshot, released bool) {
	if wr.format != Protobuf {
		var cum uint64
		for k, le := range f.hist.Buckets {
			if released {
				cum += h.counts[k]
			}
			wr.num = bucket(wr.w, wr.num[:0], f.name, se.labelText, le, cum, wr.format)
		}
		wr.num = bucket(wr.w, wr.num[:0], f.name, se.labelText, math.Inf(1), h.count, wr.format)
		wr.num = sample(wr.w, wr.num[:0], f.name, "_sum", se.labelText, "", h.sum, wr.format)
		wr.num = count(wr.w, wr.num[:0], f.name, "_count", se.labelText, h.count)
		return
	}
	wr.m = wr.appendSeriesLabels(wr.m[:0], f, se)
	b := protowire.AppendTag(wr.sub[:0], 1, protowire.VarintType)
	b = protowire.AppendVarint(b, h.count)
	b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(h.sum))
	var cum uint64
	for k, le := range f.hist.Buckets {
		if released {
			cum += h.counts[k]
		}
		n := protowire.SizeTag(1) + protowire.SizeVarint(cum) + protowire.SizeTag(2) + protowire.SizeFixed64()
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, cum)
		b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(le))
	}
	if f.schema != math.MinInt32 {
		schema := f.schema
		if released {
			schema = h.schema
		}
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(schema)))
		b = protowire.AppendTag(b, 6, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(zeroThreshold))
		b = protowire.AppendTag(b, 7, protowire.VarintType)
		b = protowire.AppendVarint(b, h.zero)
		b = appendSpans(b, 9, 10, h.neg)
		b = appendSpans(b, 12, 13, h.pos)
	}
	b = appendTimestamp(b, 15, se.created)
	wr.sub = b
	wr.m = appendMessage(wr.m, 7, wr.sub)
	wr.fam = appendMessage(wr.fam, 4, wr.m)
}

// appendSpans encodes a window of native buckets as spans(): a new span
// after a gap of more than two empty buckets, deltas between counts.
func appendSpans(b []byte, spanField, deltaField protowire.Number, w window) []byte {
	// Spans first (field order), then deltas: two passes over the window.
	var (
		started    bool
		offset     int
		length     uint32
		next       int
		spanAppend = func(b []byte) []byte {
			n := protowire.SizeTag(1) + protowire.SizeVarint(protowire.EncodeZigZag(int64(offset))) +
				protowire.SizeTag(2) + protowire.SizeVarint(uint64(length))
			b = protowire.AppendTag(b, spanField, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(n))
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(offset)))
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			return protowire.AppendVarint(b, uint64(length))
		}
	)
	w.each(func(k int, _ uint64) {
		gap := k - next
		if !started || gap > 2 {
			if started {
				b = spanAppend(b)
			}
			started, offset, length = true, gap, 0
		} else {
			length += uint32(gap)
		}
		length++
		next = k + 1
	})
	if started {
		b = spanAppend(b)
	}
	var prev int64
	next, started = 0, false
	w.each(func(k int, n uint64) {
		gap := k - next
		if started && gap <= 2 {
			for range gap {
				b = protowire.AppendTag(b, deltaField, protowire.VarintType)
				b = protowire.AppendVarint(b, protowire.EncodeZigZag(-prev))
				prev = 0
			}
		}
		started = true
		b = protowire.AppendTag(b, deltaField, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(n)-prev))
		prev = int64(n)
		next = k + 1
	})
	return b
}

// appendPairs encodes label pairs (field 1 of Metric).
func (wr *Writer) appendPairs(b []byte, pairs []string) []byte {
	for i := 0; i < len(pairs); i += 2 {
		b = appendPair(b, pairs[i], pairs[i+1])
	}
	return b
}

func (wr *Writer) appendSeriesLabels(b []byte, f *Family, se *Series) []byte {
	for _, i := range f.order {
		b = appendPair(b, f.labels[i], se.values[i])
	}
	return b
}

func appendPair(b []byte, name, value string) []byte {
	n := protowire.SizeTag(1) + protowire.SizeBytes(len(name)) + protowire.SizeTag(2) + protowire.SizeBytes(len(value))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, value)
}

func appendMessage(b []byte, field protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// appendTimestamp encodes a google.protobuf.Timestamp of unix milliseconds.
func appendTimestamp(b []byte, field protowire.Number, ms int64) []byte {
	secs, nanos := ms/1000, ms%1000*1e6
	if nanos < 0 {
		secs, nanos = secs-1, nanos+1e9
	}
	n := 0
	if secs != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(secs))
	}
	if nanos != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(nanos))
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	if secs != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(secs))
	}
	if nanos != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(nanos))
	}
	return b
}

// The text formats' pieces.

func writeComment(w *bufio.Writer, kind, name, text string, quote bool) {
	w.WriteString("# ")
	w.WriteString(kind)
	w.WriteByte(' ')
	w.WriteString(name)
	w.WriteByte(' ')
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '\\':
			w.WriteString(`\\`)
		case c == '\n':
			w.WriteString(`\n`)
		case c == '"' && quote:
			w.WriteString(`\"`)
		default:
			w.WriteByte(c)
		}
	}
	w.WriteByte('\n')
}

func head(w *bufio.Writer, name, suffix, labels, extra string) {
	w.WriteString(name)
	w.WriteString(suffix)
	if labels == "" && extra == "" {
		return
	}
	w.WriteByte('{')
	w.WriteString(labels)
	if extra != "" {
		if labels != "" {
			w.WriteByte(',')
		}
		w.WriteString(extra)
	}
	w.WriteByte('}')
}

func sample(w *bufio.Writer, num []byte, name, suffix, labels, extra string, v float64, format Format) []byte {
	head(w, name, suffix, labels, extra)
	w.WriteByte(' ')
	num = appendFloat(num, v, format)
	w.Write(num)
	w.WriteByte('\n')
	return num
}

func count(w *bufio.Writer, num []byte, name, suffix, labels string, n uint64) []byte {
	head(w, name, suffix, labels, "")
	w.WriteByte(' ')
	num = strconv.AppendUint(num, n, 10)
	w.Write(num)
	w.WriteByte('\n')
	return num
}

func bucket(w *bufio.Writer, num []byte, name, labels string, le float64, n uint64, format Format) []byte {
	num = append(appendFloat(append(num, `le="`...), le, format), '"')
	head(w, name, "_bucket", labels, string(num)) // short: the compiler keeps it on the stack
	w.WriteByte(' ')
	num = strconv.AppendUint(num[:0], n, 10)
	w.Write(num)
	w.WriteByte('\n')
	return num
}

// appendFloat formats v as expfmt does: Go's shortest 'g' form, with ".0"
// appended to whole numbers in OpenMetrics.
func appendFloat(b []byte, v float64, format Format) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, v, 'g', -1, 64)
	if format == OpenMetrics && !strings.ContainsAny(string(b[start:]), ".e") {
		b = append(b, '.', '0')
	}
	return b
}
