package logparse

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// Field is a Record field that a log key or nginx variable can feed.
type Field int

// The record fields, in the order of fieldNames.
const (
	FieldTimestamp Field = iota
	FieldUser
	FieldMethod
	FieldPath
	FieldStatus
	FieldDurationMs
	FieldDurationSeconds
	FieldSize
	FieldService
	FieldModel
	FieldInputTokens
	FieldOutputTokens
	FieldCacheReadTokens
	FieldCacheWriteTokens
	FieldReasoningTokens
	FieldCost
	FieldTier
	FieldCacheKey
	FieldOrg
	numFields
)

// fieldNames are the names used in the `fields:` configuration map.
var fieldNames = [numFields]string{
	"timestamp", "user_id", "method", "path", "status", "duration_ms", "duration_seconds", "size",
	"service", "model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
	"reasoning_tokens", "cost", "tier", "cache_key", "org_id",
}

// defaultJSONKeys are the gateway's key names and their common aliases.
var defaultJSONKeys = map[Field][]string{
	FieldTimestamp:        {"timestamp", "time", "ts", "@timestamp"},
	FieldUser:             {"user_id"},
	FieldMethod:           {"method"},
	FieldPath:             {"path"},
	FieldStatus:           {"status"},
	FieldDurationMs:       {"duration_ms"},
	FieldDurationSeconds:  {"duration_seconds", "request_time"},
	FieldSize:             {"size"},
	FieldService:          {"service"},
	FieldModel:            {"model"},
	FieldInputTokens:      {"input_tokens", "prompt_tokens"},
	FieldOutputTokens:     {"output_tokens", "completion_tokens"},
	FieldCacheReadTokens:  {"cache_read_tokens", "cache_read_input_tokens", "cached_tokens"},
	FieldCacheWriteTokens: {"cache_write_tokens", "cache_creation_input_tokens"},
	FieldReasoningTokens:  {"reasoning_tokens"},
	FieldCost:             {"cost"},
	FieldTier:             {"tier"},
	FieldCacheKey:         {"cache_key", "request_hash"},
	FieldOrg:              {"org_id"},
}

// defaultNginxVars are the nginx variables that feed each field by default.
// $request feeds method and path when the format has it.
var defaultNginxVars = map[Field][]string{
	FieldTimestamp:       {"time_local", "time_iso8601", "msec"},
	FieldUser:            {"remote_user"},
	FieldMethod:          {"request_method"},
	FieldPath:            {"request_uri", "uri"},
	FieldStatus:          {"status"},
	FieldDurationSeconds: {"request_time"},
	FieldSize:            {"body_bytes_sent", "bytes_sent"},
	FieldOrg:             {"http_x_org_id"},
}

// DefaultNginxFormat is nginx's "combined" with $request_time appended.
const DefaultNginxFormat = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time`

// Formats are the accepted values of Config.Format.
var Formats = []string{"json", "nginx"}

// Config selects and tunes a parser.
type Config struct {
	// Format is json (the default when empty) or nginx.
	Format string `yaml:"format"`
	// NginxFormat is the log_format string, for format nginx.
	NginxFormat string `yaml:"nginx_format,omitempty"`
	// Fields maps record fields to JSON keys or nginx variables (without $),
	// replacing the defaults for the fields it names. The first key present wins.
	Fields map[string][]string `yaml:"fields,omitempty"`
	// Timezone applies to timestamps that carry no zone ("UTC", "Europe/Berlin", "Local").
	Timezone string `yaml:"timezone,omitempty"`
}

// DefaultConfig parses the gateway's JSON lines.
func DefaultConfig() Config {
	return Config{Format: "json", Timezone: "UTC"}
}

// FieldNames lists the names accepted as keys of Config.Fields.
func FieldNames() []string {
	out := append([]string(nil), fieldNames[:]...)
	sort.Strings(out)
	return out
}

func fieldByName(name string) (Field, bool) {
	for i, n := range fieldNames {
		if n == name {
			return Field(i), true
		}
	}
	return 0, false
}

// Validate checks c without building a parser.
func (c Config) Validate() error {
	_, err := New(c)
	return err
}

func (c Config) location() (*time.Location, error) {
	switch c.Timezone {
	case "", "UTC", "utc":
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return nil, fielderr.New("timezone", "unknown time zone %q", c.Timezone)
	}
	return loc, nil
}

// keysFor returns the configured or default keys of each field.
func (c Config) keysFor(defaults map[Field][]string) ([numFields][]string, error) {
	var keys [numFields][]string
	for f, k := range defaults {
		keys[f] = k
	}
	names := make([]string, 0, len(c.Fields))
	for name := range c.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, ok := fieldByName(name)
		if !ok {
			return keys, fielderr.New("fields."+name, "unknown field; known fields: %s", strings.Join(FieldNames(), ", "))
		}
		for i, k := range c.Fields[name] {
			if k == "" {
				return keys, fielderr.New("fields."+name+"["+strconv.Itoa(i)+"]", "empty key")
			}
		}
		keys[f] = c.Fields[name]
	}
	return keys, nil
}

// New builds the parser c describes.
func New(c Config) (Parser, error) {
	loc, err := c.location()
	if err != nil {
		return nil, err
	}
	switch c.Format {
	case "json", "":
		if c.NginxFormat != "" {
			return nil, fielderr.New("nginx_format", "only valid with format nginx")
		}
		keys, err := c.keysFor(defaultJSONKeys)
		if err != nil {
			return nil, err
		}
		return newJSONParser(keys, loc)
	case "nginx":
		format := c.NginxFormat
		if format == "" {
			format = DefaultNginxFormat
		}
		keys, err := c.keysFor(defaultNginxVars)
		if err != nil {
			return nil, err
		}
		return newNginxParser(format, keys, loc)
	default:
		return nil, fielderr.New("format", "must be one of %s, not %q", strings.Join(Formats, ", "), c.Format)
	}
}
