// Package fielderr carries the configuration path of a validation error
// ("logs.sources[0].format"), so that the loader can name the file line.
package fielderr

import (
	"errors"
	"fmt"
)

// Error is a validation error about one configuration field.
type Error struct {
	Path string // dotted path, indices in brackets: "sources[2].format"
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// New returns an Error for path.
func New(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Under re-roots err below prefix; errors that are not *Error get prefix as their path.
func Under(prefix string, err error) error {
	if err == nil || prefix == "" {
		return err
	}
	var fe *Error
	if errors.As(err, &fe) {
		p := prefix
		if fe.Path != "" {
			if fe.Path[0] == '[' {
				p += fe.Path
			} else {
				p += "." + fe.Path
			}
		}
		return &Error{Path: p, Msg: fe.Msg}
	}
	return &Error{Path: prefix, Msg: err.Error()}
}

// ValidName reports whether s is a non-empty name of letters, digits, '-'
// and '_': what a label value chosen in configuration may be.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}
