package series

import (
	"bufio"
	"math"
	"strconv"
	"strings"
)

// Format is a text exposition format.
type Format int

// The text formats a snapshot writes.
const (
	Text        Format = iota // Prometheus text 0.0.4
	OpenMetrics               // OpenMetrics 1.0, without the final # EOF
)

// Write renders the snapshot's families in format, as expfmt renders the
// same families gathered from Collect (the tests compare the two). Series
// come in creation order, families sorted by name.
func (snap *Snapshot) Write(w *bufio.Writer, format Format) error {
	var num []byte
	for i := range snap.fams {
		fs := &snap.fams[i]
		f := fs.f
		if len(fs.series) == 0 {
			continue
		}
		name := f.name
		if format == OpenMetrics && f.kind == Counter {
			name = strings.TrimSuffix(name, "_total") // the family, whose samples are name_total
		}
		typ := "counter"
		if f.kind == Histogram {
			typ = "histogram"
		}
		writeComment(w, "HELP", name, f.help, format == OpenMetrics)
		writeComment(w, "TYPE", name, typ, false)
		for j, se := range fs.series {
			released := j < fs.released
			if f.kind == Counter {
				v := 0.0
				if released {
					v = fs.values[j]
				}
				num = sample(w, num[:0], f.name, "", se.labelText, "", v, format)
				continue
			}
			var h histSnapshot
			if released {
				h = fs.hists[j]
			}
			var cum uint64
			for k, le := range f.hist.Buckets {
				if released {
					cum += h.counts[k]
				}
				num = bucket(w, num[:0], f.name, se.labelText, le, cum, format)
			}
			num = bucket(w, num[:0], f.name, se.labelText, math.Inf(1), h.count, format)
			num = sample(w, num[:0], f.name, "_sum", se.labelText, "", h.sum, format)
			num = count(w, num[:0], f.name, "_count", se.labelText, h.count)
		}
	}
	return w.Flush()
}

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
