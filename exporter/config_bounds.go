package exporter

import (
	"math"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/rollup"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// RollupsConfig keeps the lines' figures by log time for the optimizer.
type RollupsConfig struct {
	// Days of log time kept (by the newest line); 0 turns rollups off.
	Days int `yaml:"days"`
	// PushInterval is how often, with Redis, the saved rollups are put
	// there for the exporters sharing the ledger.
	PushInterval time.Duration `yaml:"push_interval"`
}

func (c RollupsConfig) validate() error {
	if c.Days < 0 || c.Days > rollup.MaxDays {
		return fielderr.New("days", "must be from 0 (off) to %d, not %d", rollup.MaxDays, c.Days)
	}
	if c.PushInterval < time.Second {
		return fielderr.New("push_interval", "must be at least 1s, not %s", c.PushInterval)
	}
	return nil
}

// What labels.overlong does with a label value longer than labels.max_bytes.
const (
	OverlongHash   = "hash"
	OverlongReject = "reject"
)

// LabelsConfig bounds the label values lines bring in (user ids, model
// names, routes), which a hostile line could make huge.
type LabelsConfig struct {
	// MaxBytes is the longest label value kept as it is.
	MaxBytes int `yaml:"max_bytes"`
	// Overlong is hash (the value becomes "hash:" and 16 hex digits of its
	// SHA-256) or reject (the line is invalid, reason value). Routes are
	// always hashed.
	Overlong string `yaml:"overlong"`
}

func (c LabelsConfig) validate() error {
	if c.MaxBytes < 16 {
		return fielderr.New("max_bytes", "must be at least 16, not %d", c.MaxBytes)
	}
	if c.Overlong != OverlongHash && c.Overlong != OverlongReject {
		return fielderr.New("overlong", "must be hash or reject, not %q", c.Overlong)
	}
	return nil
}

// LimitsConfig bounds the numbers a line may carry. No gateway produces
// more: a line beyond them is invalid (reason value), never a number.
type LimitsConfig struct {
	// MaxResponseBytes bounds the response size (default 10 GB).
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// MaxTokens bounds each token count of a call (default 10 million: the
	// largest context windows are 2 million).
	MaxTokens int64 `yaml:"max_tokens"`
	// MaxCost bounds a logged cost, in dollars (default 1,000).
	MaxCost float64 `yaml:"max_cost"`
	// MaxDuration bounds the request time (default 24h).
	MaxDuration time.Duration `yaml:"max_duration"`
}

// DefaultLimitsConfig are bounds a real gateway never reaches.
func DefaultLimitsConfig() LimitsConfig {
	return LimitsConfig{MaxResponseBytes: 10_000_000_000, MaxTokens: 10_000_000, MaxCost: 1000, MaxDuration: 24 * time.Hour}
}

func (c LimitsConfig) validate() error {
	switch {
	case c.MaxResponseBytes < 1:
		return fielderr.New("max_response_bytes", "must be positive")
	case c.MaxTokens < 1:
		return fielderr.New("max_tokens", "must be positive")
	case !(c.MaxCost > 0) || math.IsInf(c.MaxCost, 0):
		return fielderr.New("max_cost", "must be a positive number")
	case c.MaxDuration <= 0:
		return fielderr.New("max_duration", "must be positive")
	}
	return nil
}
