package logparse

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// nginxToken is a literal or a $variable of a compiled log_format.
type nginxToken struct {
	literal []byte
	name    string  // variable name; empty for literals
	width   int     // the value's fixed length, when it has one
	fields  []Field // record fields this variable feeds
	request bool    // $request: feeds method and path
	// mismatch names the token where a line parts from the format:
	// the variable whose value is not what it should be, or the variable
	// a literal ends (or, for the first token, starts).
	mismatch *Error
}

// nginxParser matches lines against a compiled nginx log_format. A variable
// extends to the next literal of the format (nginx escapes quotes inside
// quoted values, so a quoted value cannot contain the closing quote).
//
// Variables nothing reads (the referer and user agent of "combined") are not
// scanned when they can be skipped: the tokens after the last of them are
// matched from the end of the line backwards.
type nginxParser struct {
	tokens []nginxToken
	loc    *time.Location
	// tokens[:left] are matched forwards, tokens[right:] backwards, and the
	// unread variables between them are skipped. left == right == len(tokens)
	// when there is nothing to skip.
	left, right int

	// Consecutive lines mostly share a timestamp; remember the last one.
	lastTimeRaw [40]byte
	lastTimeLen int
	lastTime    time.Time
}

func isVarByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// compileNginxFormat splits a log_format string into literals and variables.
func compileNginxFormat(format string) ([]nginxToken, error) {
	var toks []nginxToken
	var lit []byte
	for i := 0; i < len(format); {
		if format[i] != '$' {
			lit = append(lit, format[i])
			i++
			continue
		}
		var name string
		if i+1 < len(format) && format[i+1] == '{' {
			end := strings.IndexByte(format[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ${ at byte %d", i)
			}
			name = format[i+2 : i+2+end]
			i += end + 3
		} else {
			j := i + 1
			for j < len(format) && isVarByte(format[j]) {
				j++
			}
			name = format[i+1 : j]
			i = j
		}
		if name == "" {
			return nil, fmt.Errorf("empty variable name at byte %d", i)
		}
		if len(lit) > 0 {
			toks = append(toks, nginxToken{literal: lit})
			lit = nil
		} else if len(toks) > 0 && toks[len(toks)-1].name != "" {
			return nil, fmt.Errorf("variables $%s and $%s have no text between them", toks[len(toks)-1].name, name)
		}
		toks = append(toks, nginxToken{name: name, width: fixedWidth[name]})
	}
	if len(lit) > 0 {
		toks = append(toks, nginxToken{literal: lit})
	}
	return toks, nil
}

func newNginxParser(format string, keys [numFields][]string, loc *time.Location) (*nginxParser, error) {
	toks, err := compileNginxFormat(format)
	if err != nil {
		return nil, fielderr.New("nginx_format", "%v", err)
	}
	index := map[string]int{}
	for i, t := range toks {
		if t.name != "" {
			index[t.name] = i
		}
	}
	// Each field takes the first of its variables that the format contains.
	for f, vars := range keys {
		for _, v := range vars {
			if i, ok := index[v]; ok {
				toks[i].fields = append(toks[i].fields, Field(f))
				break
			}
		}
	}
	bound := func(f Field) bool {
		for _, t := range toks {
			for _, tf := range t.fields {
				if tf == f {
					return true
				}
			}
		}
		return false
	}
	if i, ok := index["request"]; ok && !(bound(FieldMethod) && bound(FieldPath)) {
		toks[i].request = true
	}
	if _, hasRequest := index["request"]; !bound(FieldPath) && !hasRequest {
		return nil, fielderr.New("nginx_format", "has no $request, $request_uri or $uri: the path is required")
	}
	if !bound(FieldStatus) {
		return nil, fielderr.New("nginx_format", "has no $status")
	}
	for i := range toks {
		t := &toks[i]
		switch {
		case t.name != "":
			t.mismatch = newErr(ReasonSyntax, fmt.Sprintf("$%s does not hold what the log_format says it does (is it the format of these lines?)", t.name))
		case i > 0:
			t.mismatch = newErr(ReasonSyntax, fmt.Sprintf("the line does not match the log_format after $%s (is it the format of these lines?)", toks[i-1].name))
		default:
			t.mismatch = newErr(ReasonSyntax, fmt.Sprintf("the line does not start as the log_format (%q)", t.literal))
		}
	}
	p := &nginxParser{tokens: toks, loc: loc, left: len(toks), right: len(toks)}
	p.planSkip()
	return p, nil
}

// planSkip finds the run of unread variables to skip: the one that ends
// with the last unread variable, when every variable after it is read.
func (p *nginxParser) planSkip() {
	used := func(t *nginxToken) bool { return t.name == "" || t.request || len(t.fields) > 0 }
	last := -1
	for i := range p.tokens {
		if !used(&p.tokens[i]) {
			last = i
		}
	}
	if last < 0 || last == len(p.tokens)-1 {
		return // nothing unread, or the unread variable ends the line
	}
	first := last
	for first > 0 && (p.tokens[first-1].name == "" || !used(&p.tokens[first-1])) {
		first--
	}
	// tokens[first] is a literal closing the last read variable before the
	// run (or the run starts the line); match it forwards, skip to last+1.
	if p.tokens[first].name != "" {
		if first == 0 {
			p.left = 0
		} else {
			return
		}
	} else {
		p.left = first + 1
	}
	p.right = last + 1
}

// Parse implements Parser.
func (p *nginxParser) Parse(line []byte, rec *Record) error {
	*rec = Record{}
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return errEmpty
	}
	pos := 0
	for i := 0; i < p.left; i++ {
		t := &p.tokens[i]
		if t.name == "" {
			if len(line)-pos < len(t.literal) || !hasLiteralAt(line, pos, t.literal) {
				return t.mismatch
			}
			pos += len(t.literal)
			continue
		}
		var val []byte
		if i+1 < len(p.tokens) {
			next := p.tokens[i+1].literal
			end := t.width
			if end == 0 || len(line)-pos < end+len(next) || !hasLiteralAt(line, pos+end, next) {
				if end = indexLiteral(line[pos:], next); end < 0 {
					return p.tokens[i+1].mismatch
				}
			}
			val = line[pos : pos+end]
			pos += end
		} else {
			val = line[pos:]
			pos = len(line)
		}
		if err := p.apply(t, val, rec); err != nil {
			return err
		}
	}
	// Backwards from the end of the line, down to the skipped variables.
	end := len(line)
	for i := len(p.tokens) - 1; i >= p.right; i-- {
		t := &p.tokens[i]
		if t.name == "" {
			if end-pos < len(t.literal) || !hasLiteralAt(line, end-len(t.literal), t.literal) {
				return t.mismatch
			}
			end -= len(t.literal)
			continue
		}
		prev := p.tokens[i-1].literal // right > left >= 0, and variables never touch
		start := lastIndexLiteral(line[pos:end], prev)
		if start < 0 {
			return p.tokens[i-1].mismatch
		}
		start += pos + len(prev)
		if err := p.apply(t, line[start:end], rec); err != nil {
			return err
		}
		end = start
	}
	if p.right == len(p.tokens) && pos != len(line) {
		return p.tokens[len(p.tokens)-1].mismatch
	}
	return rec.validate()
}

func (p *nginxParser) apply(t *nginxToken, val []byte, rec *Record) error {
	if t.request {
		if err := parseRequest(val, rec); err != nil {
			return err
		}
	}
	for _, f := range t.fields {
		if err := p.setField(f, val, rec); err != nil {
			if err == errNumber && bytes.ContainsAny(val, " \"[") {
				// Text where the format has a number (a stock combined line
				// read with $request_time at its end): the format does not
				// describe the line. A malformed number alone is a value error.
				return t.mismatch
			}
			return err
		}
	}
	return nil
}

// parseRequest splits "$request" ("GET /path HTTP/1.1") into method and path.
func parseRequest(val []byte, rec *Record) error {
	sp := bytes.IndexByte(val, ' ')
	if sp <= 0 {
		return errRequest
	}
	rest := val[sp+1:]
	if sp2 := bytes.IndexByte(rest, ' '); sp2 >= 0 {
		rest = rest[:sp2]
	}
	if len(rest) == 0 {
		return errRequest
	}
	if rec.Method == nil {
		rec.Method = val[:sp]
	}
	if rec.Path == nil {
		rec.Path = rest
	}
	return nil
}

func (p *nginxParser) setField(f Field, val []byte, rec *Record) error {
	switch {
	case len(val) == 1 && val[0] == '-':
		return nil // nginx writes "-" for an empty value
	case f == FieldTimestamp:
		t, ok := p.parseTime(val)
		if !ok {
			return errTime
		}
		rec.Time = t
		return nil
	case f == FieldDurationMs || f == FieldDurationSeconds:
		// $upstream_response_time lists one time per upstream tried: "0.1, 0.3".
		if c := bytes.IndexByte(val, ','); c >= 0 {
			val = val[:c]
		}
	}
	return rec.setValue(f, val)
}

func (p *nginxParser) parseTime(val []byte) (time.Time, bool) {
	if len(val) == p.lastTimeLen && bytes.Equal(val, p.lastTimeRaw[:p.lastTimeLen]) {
		return p.lastTime, true
	}
	t, ok := parseNginxTime(val)
	if !ok {
		t, ok = parseTime(val, p.loc)
	}
	if ok && len(val) <= len(p.lastTimeRaw) {
		p.lastTimeLen = copy(p.lastTimeRaw[:], val)
		p.lastTime = t
	}
	return t, ok
}

// indexLiteral is bytes.Index for the short separators of a log format,
// without its set-up cost: most values are short, so a plain loop finds the
// separator before a vectorised search would have started.
func indexLiteral(b, lit []byte) int {
	first := lit[0]
	n := len(b) - len(lit) + 1
	for i := 0; i < n; i++ {
		if b[i] != first {
			if i < 32 {
				continue
			}
			j := bytes.IndexByte(b[i:n], first)
			if j < 0 {
				return -1
			}
			i += j
		}
		if hasLiteralAt(b, i, lit) {
			return i
		}
	}
	return -1
}

// lastIndexLiteral is bytes.LastIndex for short separators near the end.
func lastIndexLiteral(b, lit []byte) int {
	for i := len(b) - len(lit); i >= 0; i-- {
		if b[i] == lit[0] && hasLiteralAt(b, i, lit) {
			return i
		}
	}
	return -1
}

// fixedWidth is the length of variables whose values always have it.
var fixedWidth = map[string]int{"time_local": 26, "status": 3, "time_iso8601": 25}

// hasLiteralAt reports whether b holds lit at i; the caller checks the length.
func hasLiteralAt(b []byte, i int, lit []byte) bool {
	for k, c := range lit {
		if b[i+k] != c {
			return false
		}
	}
	return true
}
