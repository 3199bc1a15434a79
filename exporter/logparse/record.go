// Package logparse turns one access-log line into a typed Record.
//
// Parsers are deterministic functions of their input: no I/O, no clock, no
// metrics. They reuse an internal scratch buffer, so a Parser is not safe for
// concurrent use, and the byte slices of a Record are valid only until the
// next call to Parse on the same Parser.
package logparse

import (
	"encoding/binary"
	"errors"
	"time"
	"unicode/utf8"
)

// Record is one parsed access-log line.
type Record struct {
	// Time is the request time from the line; zero when the line has none.
	Time time.Time

	Method []byte
	// Path is the request target as logged, query string included.
	Path   []byte
	Status int
	// Duration is the request time in seconds; valid when HasDuration.
	Duration    float64
	HasDuration bool
	// Size is the response body size in bytes.
	Size int64

	// User is empty for anonymous requests ("-" in nginx, null in JSON).
	User     []byte
	Service  []byte
	Model    []byte
	Tier     []byte
	Org      []byte
	CacheKey []byte

	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	ReasoningTokens  int64
	// HasTokens is set when any token field was present.
	HasTokens bool

	// Cost is a per-request cost in dollars logged by the gateway; valid when HasCost.
	Cost    float64
	HasCost bool
}

// Parser parses one line (without its trailing newline) into rec.
// On error rec holds no meaningful data.
type Parser interface {
	Parse(line []byte, rec *Record) error
}

// Reason classifies why a line was rejected; it is a bounded label value.
type Reason string

// The reasons a line can be rejected.
const (
	ReasonSyntax   Reason = "syntax"   // not the configured format
	ReasonMissing  Reason = "missing"  // a required field is absent
	ReasonValue    Reason = "value"    // a field has an impossible value
	ReasonEncoding Reason = "encoding" // invalid UTF-8 in a field that becomes a label
	ReasonTooLong  Reason = "too_long" // longer than the configured maximum
	ReasonTime     Reason = "time"     // a timestamp in the future, or too far in the past
)

// Reasons lists every Reason, for initialising per-reason series.
var Reasons = []Reason{ReasonSyntax, ReasonMissing, ReasonValue, ReasonEncoding, ReasonTooLong, ReasonTime}

// NumReasons is len(Reasons), for arrays indexed by Reason.Index.
const NumReasons = 6

// Index is r's position in Reasons.
func (r Reason) Index() int {
	for i, x := range Reasons {
		if x == r {
			return i
		}
	}
	return 0
}

// Error is a parse error. Errors are preallocated values, so rejecting a line
// does not allocate.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Msg }

func newErr(r Reason, msg string) *Error { return &Error{Reason: r, Msg: msg} }

// ReasonOf returns the Reason of a parse error, or ReasonSyntax for others.
func ReasonOf(err error) Reason {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return ReasonSyntax
}

var (
	errEmpty        = newErr(ReasonSyntax, "empty line")
	errNotObject    = newErr(ReasonSyntax, "not a JSON object")
	errJSON         = newErr(ReasonSyntax, "malformed JSON")
	errTooDeep      = newErr(ReasonSyntax, "JSON nested too deeply")
	errTrailing     = newErr(ReasonSyntax, "trailing data after JSON object")
	errRequest      = newErr(ReasonSyntax, "malformed request line")
	errNoPath       = newErr(ReasonMissing, "no request path")
	errNoStatus     = newErr(ReasonMissing, "no status")
	errStatus       = newErr(ReasonValue, "status outside 100-599")
	errDuration     = newErr(ReasonValue, "duration negative or absurd")
	errSize         = newErr(ReasonValue, "negative size")
	errTokens       = newErr(ReasonValue, "negative or absurd token count")
	errCost         = newErr(ReasonValue, "negative or non-finite cost")
	errNumber       = newErr(ReasonValue, "not a number")
	errTime         = newErr(ReasonValue, "unparseable timestamp")
	errUTF8         = newErr(ReasonEncoding, "invalid UTF-8")
	errControlChars = newErr(ReasonEncoding, "control character in a label field")
	errTooLong      = newErr(ReasonTooLong, "line longer than the configured maximum")
)

// ErrTooLong is what a reader reports for a line it dropped for its length.
var ErrTooLong error = errTooLong

// ErrFuture and ErrPast reject a line dated beyond the clock's skew or
// before the horizon: its time is impossible, so are its numbers.
var (
	ErrFuture error = newErr(ReasonTime, "timestamp in the future (beyond logs.max_clock_skew)")
	ErrPast   error = newErr(ReasonTime, "timestamp older than logs.max_line_age")
)

const (
	// maxDuration bounds a plausible request time; larger values are data errors.
	maxDuration = 24 * 3600.0
	// maxTokens bounds a plausible per-request token count.
	maxTokens = 1 << 40
)

// validate applies the checks common to every format.
func (r *Record) validate() error {
	if len(r.Path) == 0 {
		return errNoPath
	}
	if r.Status == 0 {
		return errNoStatus
	}
	if r.Status < 100 || r.Status > 599 {
		return errStatus
	}
	if r.HasDuration && !(r.Duration >= 0 && r.Duration <= maxDuration) {
		return errDuration
	}
	if r.Size < 0 {
		return errSize
	}
	for _, t := range [...]int64{r.InputTokens, r.OutputTokens, r.CacheReadTokens, r.CacheWriteTokens, r.ReasoningTokens} {
		if t < 0 || t > maxTokens {
			return errTokens
		}
	}
	if r.HasCost && !(r.Cost >= 0 && r.Cost < 1e12) {
		return errCost
	}
	for _, b := range [...][]byte{r.Method, r.Path, r.User, r.Service, r.Model, r.Tier, r.Org} {
		if err := checkLabelBytes(b); err != nil {
			return err
		}
	}
	return nil
}

// checkLabelBytes rejects bytes that cannot become a Prometheus label value:
// invalid UTF-8 and ASCII control characters.
func checkLabelBytes(b []byte) error {
	// Eight bytes at a time: plain printable ASCII is the common case.
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		const lo, hi = 0x0101010101010101, 0x8080808080808080
		// A byte is suspicious when it is >= 0x80, < 0x20 or == 0x7f.
		if (w|(w-0x20*lo)|((w^0x7f*lo)-lo))&hi != 0 {
			break
		}
	}
	ascii := true
	for _, c := range b[i:] {
		if c < 0x20 || c == 0x7f {
			return errControlChars
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(b) {
		return errUTF8
	}
	return nil
}

// setValue stores the text of a field's value in r. Timestamps are left to
// the parsers, whose formats differ.
func (r *Record) setValue(f Field, val []byte) error {
	switch f {
	case FieldUser, FieldMethod, FieldPath, FieldService, FieldModel, FieldTier, FieldCacheKey, FieldOrg:
		*stringField(r, f) = val
	case FieldStatus:
		n, ok := parseInt(val)
		if !ok {
			return errNumber
		}
		if n < 0 || n > 999 {
			return errStatus
		}
		r.Status = int(n)
	case FieldSize:
		n, ok := parseInt(val)
		if !ok {
			return errNumber
		}
		r.Size = n
	case FieldInputTokens, FieldOutputTokens, FieldCacheReadTokens, FieldCacheWriteTokens, FieldReasoningTokens:
		n, ok := parseInt(val)
		if !ok {
			return errNumber
		}
		*tokenField(r, f) = n
		r.HasTokens = true
	case FieldDurationMs, FieldDurationSeconds:
		v, ok := parseFloat(val)
		if !ok {
			return errNumber
		}
		if f == FieldDurationMs {
			v /= 1000
		}
		r.Duration, r.HasDuration = v, true
	case FieldCost:
		v, ok := parseFloat(val)
		if !ok {
			return errNumber
		}
		r.Cost, r.HasCost = v, true
	}
	return nil
}

func stringField(rec *Record, f Field) *[]byte {
	switch f {
	case FieldUser:
		return &rec.User
	case FieldMethod:
		return &rec.Method
	case FieldPath:
		return &rec.Path
	case FieldService:
		return &rec.Service
	case FieldModel:
		return &rec.Model
	case FieldTier:
		return &rec.Tier
	case FieldCacheKey:
		return &rec.CacheKey
	default:
		return &rec.Org
	}
}

func tokenField(rec *Record, f Field) *int64 {
	switch f {
	case FieldInputTokens:
		return &rec.InputTokens
	case FieldOutputTokens:
		return &rec.OutputTokens
	case FieldCacheReadTokens:
		return &rec.CacheReadTokens
	case FieldCacheWriteTokens:
		return &rec.CacheWriteTokens
	default:
		return &rec.ReasoningTokens
	}
}
