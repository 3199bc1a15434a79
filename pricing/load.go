package pricing

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/usage-exporter/usage-exporter/internal/configfile"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

//go:embed default-prices.yml
var builtinPrices []byte

// BuiltinName is the source name of the table compiled into the binary.
const BuiltinName = "builtin"

// Config is the pricing section of the configuration.
type Config struct {
	// Builtin loads the table shipped with the exporter first; files merge on top.
	Builtin bool `yaml:"builtin"`
	// Files are price files merged per model in order: YAML in this
	// project's format, or LiteLLM's model_prices_and_context_window.json
	// (any file ending in .json).
	Files []string `yaml:"files,omitempty"`
	// Aliases map the model names the gateway logs to price keys.
	Aliases map[string]string `yaml:"aliases,omitempty"`
	// PerCall are dollars per successful call of an api_service whose calls
	// carry no token counts.
	PerCall map[string]float64 `yaml:"per_call"`
	// EgressPerGB prices response bytes, per 10^9 bytes.
	EgressPerGB float64 `yaml:"egress_per_gb"`
	// StoragePerGBMonth prices stored data (StorageMonthlyCost), per 10^9 bytes.
	StoragePerGBMonth float64 `yaml:"storage_per_gb_month"`
	// MaxModels caps distinct model label values; the rest fold into __other__.
	MaxModels int `yaml:"max_models"`
}

// DefaultConfig holds the prices of the system usage-exporter replaces.
func DefaultConfig() Config {
	return Config{
		Builtin:           true,
		PerCall:           map[string]float64{"embeddings": 0.001, "search": 0.0005, "tts": 0.0015, "stt": 0.0012},
		EgressPerGB:       0.09,
		StoragePerGBMonth: 0.023,
		MaxModels:         200,
	}
}

// Validate checks the numbers; files are checked by Load.
func (c Config) Validate() error {
	names := make([]string, 0, len(c.PerCall))
	for s := range c.PerCall {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		if !validPrice(c.PerCall[s]) {
			return fielderr.New("per_call."+s, "must be a non-negative number")
		}
	}
	if !validPrice(c.EgressPerGB) {
		return fielderr.New("egress_per_gb", "must be a non-negative number")
	}
	if !validPrice(c.StoragePerGBMonth) {
		return fielderr.New("storage_per_gb_month", "must be a non-negative number")
	}
	if c.MaxModels < 1 {
		return fielderr.New("max_models", "must be at least 1, not %d", c.MaxModels)
	}
	if !c.Builtin && len(c.Files) == 0 {
		return fielderr.New("files", "no prices: list price files or keep builtin: true")
	}
	for i, f := range c.Files {
		if f == "" {
			return fielderr.New("files["+strconv.Itoa(i)+"]", "must not be empty")
		}
	}
	return nil
}

func validPrice(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }

// Load builds the table c describes. Errors name the file and, for YAML
// files, the line.
func Load(c Config) (*Table, error) {
	t := newTable()
	if c.Builtin {
		if err := t.add(BuiltinName, builtinPrices, false); err != nil {
			return nil, fmt.Errorf("built-in prices: %w", err)
		}
	}
	for _, path := range c.Files {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := t.add(path, data, strings.EqualFold(filepath.Ext(path), ".json")); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	for from, to := range c.Aliases {
		t.aliases[from] = to
	}
	return t, nil
}

func (t *Table) add(name string, data []byte, litellm bool) error {
	var entries map[string]*Entry
	var err error
	if litellm {
		entries, err = parseLiteLLM(data)
	} else {
		var aliases map[string]string
		entries, aliases, err = parseYAML(data)
		for k, v := range aliases {
			t.aliases[k] = v
		}
	}
	if err != nil {
		return err
	}
	for key, e := range entries {
		if old, ok := t.entries[key]; ok {
			old.merge(e)
		} else {
			t.entries[key] = e
		}
	}
	sum := sha256.Sum256(data)
	t.sources = append(t.sources, Source{Name: name, SHA256: hex.EncodeToString(sum[:]), Entries: len(entries)})
	return nil
}

// priceFile is this project's price file format: dollars per million tokens.
type priceFile struct {
	Models  map[string]*Entry `yaml:"models"`
	Aliases map[string]string `yaml:"aliases,omitempty"`
}

// Validate checks every model's prices, in name order.
func (f *priceFile) Validate() error {
	for _, k := range slices.Sorted(maps.Keys(f.Models)) {
		e := f.Models[k]
		if e == nil {
			return fielderr.New("models."+k, "has no prices")
		}
		if err := e.validate(); err != nil {
			return fielderr.Under("models."+k, err)
		}
	}
	return nil
}

func parseYAML(data []byte) (map[string]*Entry, map[string]string, error) {
	var f priceFile
	if err := configfile.Parse(data, &f); err != nil {
		return nil, nil, err
	}
	return f.Models, f.Aliases, nil
}

func (e *Entry) validate() error {
	check := func(name string, v *float64) error {
		if v != nil && !validPrice(*v) {
			return fielderr.New(name, "must be a non-negative number")
		}
		return nil
	}
	rates := func(prefix string, r Rates) error {
		for _, f := range []struct {
			name string
			v    *float64
		}{{"input", r.Input}, {"output", r.Output}, {"cache_read", r.CacheRead}, {"cache_write", r.CacheWrite},
			{"cache_write_1h", r.CacheWrite1h}, {"reasoning", r.Reasoning}} {
			if err := check(prefix+f.name, f.v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := rates("", e.Rates); err != nil {
		return err
	}
	if err := check("batch_input", e.BatchInput); err != nil {
		return err
	}
	if err := check("batch_output", e.BatchOutput); err != nil {
		return err
	}
	for i, t := range e.LongContext {
		p := "long_context[" + strconv.Itoa(i) + "]."
		if t.Above <= 0 {
			return fielderr.New(p+"above_tokens", "must be positive")
		}
		if err := rates(p, t.Rates); err != nil {
			return err
		}
	}
	switch e.Convention {
	case "", ConventionOpenAI, ConventionAnthropic, ConventionGemini:
	default:
		return fielderr.New("convention", "must be openai, anthropic or gemini, not %q", e.Convention)
	}
	if e.Quality != nil && !(*e.Quality >= 0 && *e.Quality <= 100) {
		return fielderr.New("quality", "must be between 0 and 100")
	}
	return nil
}

// litellmRates maps LiteLLM's per-token price fields to ours.
var litellmRates = map[string]func(*Rates) **float64{
	"input_cost_per_token":                      func(r *Rates) **float64 { return &r.Input },
	"output_cost_per_token":                     func(r *Rates) **float64 { return &r.Output },
	"cache_read_input_token_cost":               func(r *Rates) **float64 { return &r.CacheRead },
	"input_cost_per_token_cache_hit":            func(r *Rates) **float64 { return &r.CacheRead },
	"cache_creation_input_token_cost":           func(r *Rates) **float64 { return &r.CacheWrite },
	"cache_creation_input_token_cost_above_1hr": func(r *Rates) **float64 { return &r.CacheWrite1h },
	"output_cost_per_reasoning_token":           func(r *Rates) **float64 { return &r.Reasoning },
}

var longContextField = regexp.MustCompile(`^(.+)_above_([0-9]+)k_tokens$`)

// reservedKeys of LiteLLM's file are not models.
var reservedKeys = map[string]bool{"sample_spec": true, "fallback_generalizations": true}

// parseLiteLLM reads model_prices_and_context_window.json: dollars per
// token, converted to per million. Fields it does not know are ignored, as
// the upstream file keeps growing; entries without token prices (images,
// per-second audio) are skipped.
func parseLiteLLM(data []byte) (map[string]*Entry, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not a LiteLLM price file (a JSON object of models): %w", err)
	}
	out := map[string]*Entry{}
	for key, body := range raw {
		if reservedKeys[key] {
			continue
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil {
			continue
		}
		e := &Entry{}
		tiers := map[int64]*Tier{}
		for name, v := range fields {
			if name == "litellm_provider" {
				_ = json.Unmarshal(v, &e.Provider)
				continue
			}
			var f float64
			if json.Unmarshal(v, &f) != nil || !validPrice(f) {
				continue
			}
			perM := roundRate(f * 1e6)
			switch name {
			case "input_cost_per_token_batches":
				e.BatchInput = &perM
				continue
			case "output_cost_per_token_batches":
				e.BatchOutput = &perM
				continue
			}
			if field, ok := litellmRates[name]; ok {
				*field(&e.Rates) = &perM
				continue
			}
			if m := longContextField.FindStringSubmatch(name); m != nil {
				field, ok := litellmRates[m[1]]
				k, err := strconv.ParseInt(m[2], 10, 64)
				if !ok || err != nil {
					continue
				}
				t := tiers[k*1000]
				if t == nil {
					t = &Tier{Above: k * 1000}
					tiers[k*1000] = t
				}
				*field(&t.Rates) = &perM
			}
		}
		if e.Input == nil && e.Output == nil {
			continue
		}
		for _, t := range tiers {
			e.LongContext = append(e.LongContext, *t)
		}
		sort.Slice(e.LongContext, func(i, j int) bool { return e.LongContext[i].Above < e.LongContext[j].Above })
		out[key] = e
	}
	return out, nil
}

// StorageMonthlyCost is what bytes stored for a month cost at perGBMonth
// dollars per 10^9 bytes: the exporter's storage series and the
// optimizer's storage costs both price with it.
func StorageMonthlyCost(bytes, perGBMonth float64) float64 { return bytes * perGBMonth / 1e9 }
