package litellm

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf8"
)

// The per-request families carry one series per model, user, key, team and
// more: 50 models and 1,000 end users make about 1.25 million of their lines
// in one scrape. expfmt's parser reads about 300,000 lines a second and
// allocates for every label, so these families' sample lines go through
// scanSample instead, which allocates nothing per line. The tests check it
// against expfmt on the fixture, on generated expositions and under fuzzing.
var bulkFamilies = map[string]bool{
	famSpend: true, famInputTokens: true, famOutputTokens: true, famInputCached: true, famInputCacheCreation: true,
	famOutputReasoning: true, famProxyRequests: true, famProxyFailed: true, famLatency: true,
}

var (
	errSample    = errors.New("malformed sample line")
	errValue     = errors.New("malformed sample value")
	errUTF8      = errors.New("invalid UTF-8 in a label value")
	errDuplicate = errors.New("duplicate label name")
)

// sample is one scanned line; its byte slices point into the line or into
// the scanner's scratch buffer until the next scan.
type sample struct {
	name   []byte
	labels []labelPair
	value  float64
}

type labelPair struct{ name, value []byte }

type scanner struct {
	s       sample
	scratch []byte
}

// scan parses `name{label="value",...} value [timestamp]`.
func (sc *scanner) scan(line []byte) (*sample, error) {
	s := &sc.s
	s.labels = s.labels[:0]
	sc.scratch = sc.scratch[:0]
	line = bytes.TrimRight(line, "\r\n")
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	if i == 0 {
		return nil, errSample
	}
	s.name = line[:i]
	i = skipBlank(line, i)
	if i < len(line) && line[i] == '{' {
		i++
		var seen uint64 // a cheap filter for duplicate label names
		for {
			i = skipBlank(line, i)
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			var name []byte
			if i < len(line) && line[i] == '"' {
				// A quoted (UTF-8) label name.
				v, next, err := sc.quoted(line, i+1)
				if err != nil || len(v) == 0 {
					return nil, errSample
				}
				name, i = v, next
			} else {
				start := i
				for i < len(line) && isLabelByte(line[i], i == start) {
					i++
				}
				if i == start {
					return nil, errSample
				}
				name = line[start:i]
			}
			h := uint64(1) << ((uint(len(name))*31 + uint(name[0]) + 7*uint(name[len(name)-1])) & 63)
			if seen&h != 0 {
				for _, l := range s.labels {
					if bytes.Equal(l.name, name) {
						return nil, errDuplicate
					}
				}
			}
			seen |= h
			i = skipBlank(line, i)
			if i+1 >= len(line) || line[i] != '=' {
				return nil, errSample
			}
			i = skipBlank(line, i+1)
			if i >= len(line) || line[i] != '"' {
				return nil, errSample
			}
			val, next, err := sc.quoted(line, i+1)
			if err != nil {
				return nil, err
			}
			s.labels = append(s.labels, labelPair{name: name, value: val})
			i = skipBlank(line, next)
			if i < len(line) && line[i] == ',' {
				i++
				continue
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			return nil, errSample
		}
	}
	i = skipBlank(line, i)
	end := i
	for end < len(line) && line[end] != ' ' && line[end] != '\t' {
		end++
	}
	if end == i {
		return nil, errValue
	}
	v, err := parseValue(line[i:end])
	if err != nil {
		return nil, err
	}
	s.value = v
	// An optional integer timestamp may follow; nothing else.
	rest := bytes.TrimSpace(line[end:])
	if len(rest) > 0 {
		if _, err := strconv.ParseInt(string(rest), 10, 64); err != nil {
			return nil, errSample
		}
	}
	return s, nil
}

func skipBlank(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

func isLabelByte(c byte, first bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
}

// quoted reads a label value after its opening quote, resolving \\, \" and \n.
func (sc *scanner) quoted(b []byte, i int) ([]byte, int, error) {
	start := i
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			v := b[start:j]
			if !utf8.Valid(v) {
				return nil, 0, errUTF8
			}
			return v, j + 1, nil
		case '\\':
			return sc.unescape(b, start, j)
		}
	}
	return nil, 0, errSample
}

func (sc *scanner) unescape(b []byte, start, j int) ([]byte, int, error) {
	out := len(sc.scratch)
	sc.scratch = append(sc.scratch, b[start:j]...)
	for ; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			v := sc.scratch[out:]
			if !utf8.Valid(v) {
				return nil, 0, errUTF8
			}
			return v, j + 1, nil
		case '\\':
			if j+1 >= len(b) {
				return nil, 0, errSample
			}
			j++
			switch b[j] {
			case '\\':
				sc.scratch = append(sc.scratch, '\\')
			case '"':
				sc.scratch = append(sc.scratch, '"')
			case 'n':
				sc.scratch = append(sc.scratch, '\n')
			default:
				return nil, 0, errSample
			}
		default:
			sc.scratch = append(sc.scratch, c)
		}
	}
	return nil, 0, errSample
}

// parseValue reads a number as expfmt does: strconv's syntax (Inf and NaN
// included) without hex exponents or digit separators.
func parseValue(b []byte) (float64, error) {
	if bytes.ContainsAny(b, "pP_") {
		return 0, errValue
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, errValue
	}
	return v, nil
}

// get returns a label's value; nil when absent, empty or "None" (LiteLLM's unset).
func (s *sample) get(name string) []byte {
	for _, l := range s.labels {
		if string(l.name) == name {
			if len(l.value) == 0 || string(l.value) == "None" {
				return nil
			}
			return l.value
		}
	}
	return nil
}

// intern keeps one string per distinct label value: values repeat across
// millions of lines, so only the first sighting allocates.
type intern map[string]string

func (in intern) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	in[s] = s
	return s
}

// bulk reads one sample line of a bulk family.
func (p *parser) bulk(line []byte) error {
	s, err := p.sc.scan(line)
	if err != nil {
		return err
	}
	if p.family != famLatency {
		p.count(p.family, s)
		return nil
	}
	suffix := string(s.name[len(famLatency):])
	if !p.histogram || (suffix != "_bucket" && suffix != "_count" && suffix != "_sum") {
		return nil // not a histogram's line: nothing expfmt would read as one
	}
	model := p.names.get(p.modelOf(s))
	agg := p.snap.Latency[model]
	if agg == nil {
		agg = &Histogram{Buckets: map[float64]float64{}}
		p.snap.Latency[model] = agg
	}
	switch suffix {
	case "_bucket":
		le := s.get("le")
		bound, err := parseValue(le)
		if le == nil || err != nil {
			return errSample
		}
		agg.Buckets[bound] += s.value
	case "_count":
		agg.Count += s.value
	case "_sum":
		agg.Sum += s.value
	}
	return nil
}

func (p *parser) modelOf(s *sample) []byte {
	if v := s.get(p.modelLabel); v != nil {
		return v
	}
	if v := s.get(p.otherLabel); v != nil {
		return v
	}
	return []byte("unknown")
}

func firstNonEmpty(s *sample, names ...string) []byte {
	for _, n := range names {
		if v := s.get(n); v != nil {
			return v
		}
	}
	return nil
}
