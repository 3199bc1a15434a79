package pricing

import (
	"strings"
	"testing"
)

func mustLoad(t testing.TB, c Config) *Table {
	t.Helper()
	tbl, err := Load(c)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func charge(t *testing.T, tbl *Table, model string, u Usage) Charge {
	t.Helper()
	key, e, ok := tbl.Lookup(model)
	if !ok {
		t.Fatalf("no price for %q", model)
	}
	return e.Charge(key, u)
}

// The fixed case of the design: exact, not approximately.
func TestGPT4DefaultCostIsExact(t *testing.T) {
	c := charge(t, mustLoad(t, DefaultConfig()), "gpt-4", Usage{Input: 1000, Output: 500})
	if c.Cost != 0.06 {
		t.Fatalf("gpt-4, 1000 in / 500 out = %v, want exactly 0.06", c.Cost)
	}
}

// One case per provider convention: how reported counts become billed buckets.
func TestChargeByConvention(t *testing.T) {
	tbl := mustLoad(t, DefaultConfig())
	cases := []struct {
		name  string
		model string
		usage Usage
		want  Charge
	}{
		{
			// OpenAI: prompt_tokens include cached_tokens; completion includes reasoning.
			name: "openai cached prompt and reasoning", model: "gpt-4o",
			usage: Usage{Input: 10000, CacheRead: 4000, Output: 2000, Reasoning: 500},
			want:  Charge{Input: 6000, CacheRead: 4000, Output: 1500, Reasoning: 500, Cost: 0.04},
		},
		{
			name: "openai reasoning model", model: "o1",
			usage: Usage{Input: 1000, Output: 3000, Reasoning: 2500},
			want:  Charge{Input: 1000, Output: 500, Reasoning: 2500, Cost: 0.195},
		},
		{
			// Anthropic: input_tokens exclude cache reads and writes; writes cost
			// 1.25x (5 minutes) and 2x (1 hour) input.
			name: "anthropic cache reads and writes", model: "claude-3-5-sonnet",
			usage: Usage{Input: 1000, CacheRead: 20000, CacheWrite: 5000, CacheWrite1h: 2000, Output: 800},
			want:  Charge{Input: 1000, CacheRead: 20000, CacheWrite: 5000, CacheWrite1h: 2000, Output: 800, Cost: 0.05175},
		},
		{
			// The whole request at the long-context rate once the prompt
			// (input + cache reads + writes) passes 200k.
			name: "anthropic long context", model: "claude-sonnet-4",
			usage: Usage{Input: 150000, CacheRead: 60000, Output: 2000},
			want:  Charge{Input: 150000, CacheRead: 60000, Output: 2000, Cost: 0.981, LongContext: 200000},
		},
		{
			// Gemini: prompt includes cached tokens; thinking tokens are extra output.
			name: "gemini cached prompt and thinking", model: "gemini-1.5-pro",
			usage: Usage{Input: 100000, CacheRead: 30000, Output: 1000, Reasoning: 400},
			want:  Charge{Input: 70000, CacheRead: 30000, Output: 1000, Reasoning: 400, Cost: 0.103875},
		},
		{
			name: "gemini long context", model: "gemini-1.5-pro",
			usage: Usage{Input: 200000, Output: 1000},
			want:  Charge{Input: 200000, Output: 1000, Cost: 0.51, LongContext: 128000},
		},
		{
			// Counts that contradict the convention are clamped, never negative.
			name: "openai cached more than prompt", model: "gpt-4o-mini",
			usage: Usage{Input: 100, CacheRead: 500, Output: 10, Reasoning: 50},
			want:  Charge{Input: 0, CacheRead: 100, Output: 0, Reasoning: 10, Cost: (100*0.075 + 10*0.6) / 1e6},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := charge(t, tbl, tc.model, tc.usage)
			if got != tc.want {
				t.Errorf("Charge(%s, %+v)\n got %+v\nwant %+v", tc.model, tc.usage, got, tc.want)
			}
		})
	}
}

func TestLiteLLMFile(t *testing.T) {
	tbl := mustLoad(t, Config{Files: []string{"testdata/litellm-prices.json"}, MaxModels: 10})
	if got := tbl.Len(); got != 7 {
		t.Errorf("%d entries, want 7 (reserved keys, image pricing and unpriced entries skipped)", got)
	}
	e, ok := tbl.Entry("claude-sonnet-4-20250514")
	if !ok {
		t.Fatal("claude-sonnet-4-20250514 missing")
	}
	if *e.Input != 3 || *e.CacheWrite1h != 6 || e.TokenConvention("claude-sonnet-4-20250514") != ConventionAnthropic {
		t.Errorf("rates per million: %+v", e.Rates)
	}
	if len(e.LongContext) != 1 || e.LongContext[0].Above != 200000 || *e.LongContext[0].Input != 6 ||
		*e.LongContext[0].CacheWrite1h != 12 || *e.LongContext[0].Output != 22.5 {
		t.Errorf("long-context tier: %+v", e.LongContext)
	}
	g, _ := tbl.Entry("gpt-4o")
	if *g.BatchInput != 1.25 || *g.BatchOutput != 5 || *g.CacheRead != 1.25 {
		t.Errorf("gpt-4o batch and cache rates: %+v", g)
	}
	d, _ := tbl.Entry("deepseek/deepseek-chat")
	if *d.CacheRead != 0.07 {
		t.Errorf("input_cost_per_token_cache_hit not read as cache_read: %+v", d.Rates)
	}
	if o, ok := tbl.Entry("odd-entry"); ok {
		t.Errorf("entry with unusable prices loaded: %+v", o)
	}
	if src := tbl.Sources(); len(src) != 1 || src[0].Name != "testdata/litellm-prices.json" || len(src[0].SHA256) != 64 || src[0].Entries != 7 {
		t.Errorf("sources %+v", src)
	}
	// Thinking tokens on Gemini bill as output, on top of it.
	c := charge(t, tbl, "gemini-2.5-pro", Usage{Input: 1000, Output: 100, Reasoning: 200})
	if c.Cost != (1000*1.25+100*10+200*10)/1e6 {
		t.Errorf("gemini-2.5-pro cost %v", c.Cost)
	}
}

func TestMergeAliasesAndMatching(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Files = []string{"testdata/litellm-prices.json", "testdata/overrides.yml"}
	cfg.Aliases = map[string]string{"prod-sonnet": "claude-3-5-sonnet-20241022"}
	tbl := mustLoad(t, cfg)
	if len(tbl.Sources()) != 3 || tbl.Sources()[0].Name != BuiltinName {
		t.Errorf("sources %+v", tbl.Sources())
	}
	g, _ := tbl.Entry("gpt-4")
	if *g.Input != 20 || *g.Output != 60 || *g.Quality != 95 {
		t.Errorf("override must change input only: %+v quality %v", g.Rates, *g.Quality)
	}
	o, _ := tbl.Entry("gpt-4o")
	if *o.Quality != 91 || *o.BatchOutput != 5 {
		t.Errorf("gpt-4o: quality %v (override), batch %v (LiteLLM)", *o.Quality, *o.BatchOutput)
	}
	cases := map[string]string{
		"gpt-4o":                      "gpt-4o",
		"GPT-4o":                      "gpt-4o",
		"openai/gpt-4o":               "gpt-4o",
		"azure/gpt-4o":                "gpt-4o",
		"gateway-gpt":                 "gpt-4o", // alias from the overrides file
		"prod-sonnet":                 "claude-3-5-sonnet-20241022",
		"anthropic/claude-3-5-sonnet": "claude-3-5-sonnet",
		"bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0": "anthropic.claude-3-5-sonnet-20241022-v2:0",
		"gemini-2.5-pro": "gemini/gemini-2.5-pro",
		"deepseek-chat":  "deepseek/deepseek-chat",
		"in-house-llm":   "in-house-llm",
	}
	for model, want := range cases {
		key, _, ok := tbl.Lookup(model)
		if !ok || key != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", model, key, ok, want)
		}
	}
	for _, unknown := range []string{"gpt-5-turbo-ultra", "", "claude"} {
		if key, _, ok := tbl.Lookup(unknown); ok {
			t.Errorf("Lookup(%q) matched %q", unknown, key)
		}
	}
}

func TestBadPriceFiles(t *testing.T) {
	cases := map[string]string{
		"testdata/bad-negative.yml": "testdata/bad-negative.yml: line 6: models.cheap.input: must be a non-negative number",
		"testdata/bad-field.yml":    "testdata/bad-field.yml: line 3: field input_price not found in type pricing.Entry",
		"testdata/bad.json":         "testdata/bad.json: not a LiteLLM price file",
		"testdata/missing.yml":      "no such file",
	}
	for file, want := range cases {
		_, err := Load(Config{Files: []string{file}, MaxModels: 1})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want %q", file, err, want)
		}
	}
}

func TestPerTokenSeriesValues(t *testing.T) {
	tbl := mustLoad(t, DefaultConfig())
	e, _ := tbl.Entry("claude-3-haiku")
	got := e.PerToken()
	want := map[string]float64{"input": 0.25e-6, "output": 1.25e-6, "cache_read": 0.03e-6, "cache_write": 0.3125e-6, "cache_write_1h": 0.5e-6}
	if len(got) != len(want) {
		t.Fatalf("PerToken = %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.PerCall["search"] = -1
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "per_call.search: must be a non-negative number") {
		t.Errorf("Validate = %v", err)
	}
	c = DefaultConfig()
	c.Builtin = false
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "files: no prices") {
		t.Errorf("Validate = %v", err)
	}
}
