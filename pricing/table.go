// Package pricing prices model calls and per-call services.
//
// A Table holds per-model token prices in dollars per million tokens, loaded
// from price files (the project's YAML, or LiteLLM's
// model_prices_and_context_window.json) merged per model in order, plus an
// alias map. Charge turns a call's token counts, as its provider reports
// them, into disjoint billing buckets and a cost.
package pricing

import (
	"math"
	"sort"
	"strings"
	"sync"
)

// Token conventions: how a provider's reported counts relate to billing.
const (
	// ConventionOpenAI: prompt tokens include cached tokens; completion
	// tokens include reasoning tokens (OpenAI, Azure, most others).
	ConventionOpenAI = "openai"
	// ConventionAnthropic: input tokens exclude cache reads and cache
	// writes, which are reported and billed separately.
	ConventionAnthropic = "anthropic"
	// ConventionGemini: prompt tokens include cached tokens; thinking
	// tokens are reported apart from the output and billed as output.
	ConventionGemini = "gemini"
)

// Rates are dollars per million tokens; nil means not set.
type Rates struct {
	Input        *float64 `yaml:"input,omitempty"`
	Output       *float64 `yaml:"output,omitempty"`
	CacheRead    *float64 `yaml:"cache_read,omitempty"`
	CacheWrite   *float64 `yaml:"cache_write,omitempty"`    // 5-minute cache writes
	CacheWrite1h *float64 `yaml:"cache_write_1h,omitempty"` // 1-hour cache writes
	Reasoning    *float64 `yaml:"reasoning,omitempty"`      // when it differs from output
}

// merge sets the rates o sets.
func (r *Rates) merge(o Rates) {
	set := func(dst **float64, v *float64) {
		if v != nil {
			*dst = v
		}
	}
	set(&r.Input, o.Input)
	set(&r.Output, o.Output)
	set(&r.CacheRead, o.CacheRead)
	set(&r.CacheWrite, o.CacheWrite)
	set(&r.CacheWrite1h, o.CacheWrite1h)
	set(&r.Reasoning, o.Reasoning)
}

// Tier holds the rates of requests whose prompt exceeds Above tokens; the
// whole request is billed at them. Unset rates fall back to the base rates.
type Tier struct {
	Above int64 `yaml:"above_tokens"`
	Rates `yaml:",inline"`
}

// Entry is one model's prices.
type Entry struct {
	Rates `yaml:",inline"`
	// BatchInput and BatchOutput are the batch API's rates, where the provider has one.
	BatchInput  *float64 `yaml:"batch_input,omitempty"`
	BatchOutput *float64 `yaml:"batch_output,omitempty"`
	// LongContext tiers, ascending by Above.
	LongContext []Tier `yaml:"long_context,omitempty"`
	Provider    string `yaml:"provider,omitempty"`
	// Convention overrides the one the provider implies.
	Convention string `yaml:"convention,omitempty"`
	// Quality is a 0-100 score for comparing models; nil when unknown.
	Quality *float64 `yaml:"quality,omitempty"`
}

func (e *Entry) merge(o *Entry) {
	e.Rates.merge(o.Rates)
	if o.BatchInput != nil {
		e.BatchInput = o.BatchInput
	}
	if o.BatchOutput != nil {
		e.BatchOutput = o.BatchOutput
	}
	for _, t := range o.LongContext {
		replaced := false
		for i := range e.LongContext {
			if e.LongContext[i].Above == t.Above {
				e.LongContext[i].Rates.merge(t.Rates)
				replaced = true
			}
		}
		if !replaced {
			e.LongContext = append(e.LongContext, t)
		}
	}
	sort.Slice(e.LongContext, func(i, j int) bool { return e.LongContext[i].Above < e.LongContext[j].Above })
	if o.Provider != "" {
		e.Provider = o.Provider
	}
	if o.Convention != "" {
		e.Convention = o.Convention
	}
	if o.Quality != nil {
		e.Quality = o.Quality
	}
}

// Priced reports whether the entry has the two rates every call needs.
func (e *Entry) Priced() bool { return e.Input != nil && e.Output != nil }

// TokenConvention is the convention that applies to the entry's counts.
func (e *Entry) TokenConvention(key string) string {
	if e.Convention != "" {
		return e.Convention
	}
	p, k := strings.ToLower(e.Provider), strings.ToLower(key)
	switch {
	case p == "anthropic" || strings.Contains(k, "claude"):
		return ConventionAnthropic
	case p == "gemini" || strings.HasPrefix(p, "vertex_ai") || strings.Contains(k, "gemini"):
		return ConventionGemini
	default:
		return ConventionOpenAI
	}
}

// Source describes one loaded price file.
type Source struct {
	Name    string // path, or "builtin"
	SHA256  string
	Entries int
}

// Table is a set of model prices. Lookups are safe for concurrent use.
type Table struct {
	entries map[string]*Entry
	aliases map[string]string
	sources []Source

	mu    sync.Mutex
	cache map[string]match
}

type match struct {
	key   string
	entry *Entry
}

// maxCachedLookups bounds the memo of model names seen.
const maxCachedLookups = 4096

func newTable() *Table {
	return &Table{entries: map[string]*Entry{}, aliases: map[string]string{}, cache: map[string]match{}}
}

// Sources lists the files the table was built from, in load order.
func (t *Table) Sources() []Source { return t.sources }

// Len is the number of models with prices.
func (t *Table) Len() int { return len(t.entries) }

// Keys returns the table's model keys, sorted.
func (t *Table) Keys() []string {
	keys := make([]string, 0, len(t.entries))
	for k := range t.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Entry returns the entry stored under key exactly.
func (t *Table) Entry(key string) (*Entry, bool) {
	e, ok := t.entries[key]
	return e, ok
}

// regionPrefixes are Bedrock cross-region inference prefixes.
var regionPrefixes = []string{"us.", "eu.", "apac.", "jp.", "au.", "ca.", "global."}

// providerPrefixes are tried, in order, for a bare name the table only
// holds with a provider.
var providerPrefixes = []string{"openai/", "anthropic/", "azure/", "bedrock/", "vertex_ai/", "gemini/", "groq/",
	"mistral/", "deepseek/", "together_ai/", "fireworks_ai/"}

// Lookup finds the prices of model: through the alias map, then the exact
// name, then the name without its provider and region prefixes, then with a
// provider prefix. It returns the key that matched.
func (t *Table) Lookup(model string) (key string, e *Entry, ok bool) {
	t.mu.Lock()
	m, seen := t.cache[model]
	t.mu.Unlock()
	if !seen {
		m = t.lookup(model)
		t.mu.Lock()
		if len(t.cache) < maxCachedLookups {
			t.cache[model] = m
		}
		t.mu.Unlock()
	}
	return m.key, m.entry, m.entry != nil
}

func (t *Table) lookup(model string) match {
	name := model
	if a, ok := t.aliases[name]; ok {
		name = a
	}
	try := func(k string) (match, bool) {
		if e, ok := t.entries[k]; ok && e.Priced() {
			return match{key: k, entry: e}, true
		}
		return match{}, false
	}
	for _, candidate := range []string{name, strings.ToLower(name)} {
		if m, ok := try(candidate); ok {
			return m
		}
	}
	// Without the provider ("openai/gpt-4o", "bedrock/us.anthropic.claude-...").
	bare := strings.ToLower(name)
	for {
		i := strings.IndexByte(bare, '/')
		if i < 0 {
			break
		}
		bare = bare[i+1:]
		if m, ok := try(bare); ok {
			return m
		}
	}
	for _, r := range regionPrefixes {
		if strings.HasPrefix(bare, r) {
			if m, ok := try(strings.TrimPrefix(bare, r)); ok {
				return m
			}
		}
	}
	for _, p := range providerPrefixes {
		if m, ok := try(p + bare); ok {
			return m
		}
	}
	return match{}
}

// PerToken returns the dollars per token of each rate the entry sets, by
// token type, for the price series.
func (e *Entry) PerToken() map[string]float64 {
	out := map[string]float64{}
	put := func(name string, v *float64) {
		if v != nil {
			out[name] = *v / 1e6
		}
	}
	put("input", e.Input)
	put("output", e.Output)
	put("cache_read", e.CacheRead)
	put("cache_write", e.CacheWrite)
	put("cache_write_1h", e.CacheWrite1h)
	put("reasoning", e.Reasoning)
	put("batch_input", e.BatchInput)
	put("batch_output", e.BatchOutput)
	return out
}

// roundRate removes the float noise of per-token prices scaled to per-million
// (3e-05 * 1e6 = 30.000000000000004), keeping nine decimals.
func roundRate(v float64) float64 {
	return math.Round(v*1e9) / 1e9
}
