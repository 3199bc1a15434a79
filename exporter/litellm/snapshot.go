// Package litellm reads a LiteLLM proxy's /metrics and reduces it to what
// usage-exporter needs: the counted series of spend, tokens and requests
// (cumulative, each kept apart so that increments are taken series by
// series), and the latency, cache and budget state (for re-export). Both
// LiteLLM's metric names (v1.x, litellm_*_metric) and the older simplified
// set (litellm_total_cost, litellm_requests_total, ...) are understood.
package litellm

// Kind is what a counted series counts.
type Kind uint8

// The kinds of counted series. LiteLLM's token totals include their
// details: input includes cache reads and writes, output includes reasoning.
const (
	Spend            Kind = iota
	InputTokens           // litellm_input_tokens_metric: all input tokens
	OutputTokens          // litellm_output_tokens_metric: all output tokens
	CacheReadTokens       // litellm_input_cached_tokens_metric: provider prompt-cache reads
	CacheWriteTokens      // litellm_input_cache_creation_tokens_metric: prompt-cache writes
	ReasoningTokens       // litellm_output_reasoning_tokens_metric
	Requests              // client requests without a status code
	FailedRequests        // failed client requests (of Requests)
	OKRequests            // client requests with a 2xx or 3xx status code
	ErrorRequests         // client requests with another status code
	numKinds
)

// Labels is what usage-exporter keeps of a counted series' labels.
type Labels struct {
	// Model is the configured model label's value (requested_model or
	// model); empty when the series does not carry it.
	Model string
	// Other is the other model label's value, used to resolve Model when it
	// is missing (LiteLLM versions before 1.8x put no requested_model on
	// spend; requests carry no model).
	Other string
	// User is the configured user label's value; Team and Key the team and
	// key aliases, Org the organisation's id (spend only).
	User, Team, Key, Org string
}

// Sample is one counted series of a scrape.
type Sample struct {
	// ID identifies the series: a hash of its name and all its labels.
	ID     uint64
	Kind   Kind
	labels int32 // index into Snapshot.labels
	Value  float64
}

// Histogram is a cumulative latency histogram summed over a model's series.
type Histogram struct {
	Buckets map[float64]float64 // upper bound -> cumulative count
	Count   float64
	Sum     float64
}

// Budget is a LiteLLM budget: scope is team, org, api_key or user.
type Budget struct {
	Scope, Name                  string
	Remaining, Max, HoursToReset float64 // NaN when not reported (or unlimited)
}

// Snapshot is one scrape of LiteLLM.
type Snapshot struct {
	// StartTime is LiteLLM's process_start_time_seconds; 0 when absent
	// (LiteLLM in multiprocess mode does not report one).
	StartTime float64
	// Series are the counted series, in the order of the exposition.
	Series []Sample
	labels []Labels
	// pairs holds, from the token series that carry both model labels,
	// the tokens of each (other label, model label) pair: how to resolve a
	// series that carries only the other one.
	pairs     map[string]map[string]float64
	Latency   map[string]*Histogram
	CacheHits map[string]float64
	CacheMiss map[string]float64
	Budgets   []Budget
	// Simplified is true when the older simplified metric set was found.
	Simplified bool
}

func newSnapshot() *Snapshot {
	return &Snapshot{pairs: map[string]map[string]float64{}, Latency: map[string]*Histogram{},
		CacheHits: map[string]float64{}, CacheMiss: map[string]float64{}}
}

// Labels returns a sample's labels.
func (s *Snapshot) Labels(x Sample) Labels { return s.labels[x.labels] }

// Totals sums the snapshot's series of a kind by what key makes of their
// labels (for tests and tools).
func (s *Snapshot) Totals(kind Kind, key func(Labels) string) map[string]float64 {
	out := map[string]float64{}
	for _, x := range s.Series {
		if x.Kind == kind {
			out[key(s.labels[x.labels])] += x.Value
		}
	}
	return out
}

// addPairs records the tokens of series that carry both model labels.
func (s *Snapshot) addPairs() {
	for _, x := range s.Series {
		if x.Kind != InputTokens && x.Kind != OutputTokens {
			continue
		}
		l := s.labels[x.labels]
		if l.Model == "" || l.Other == "" {
			continue
		}
		m := s.pairs[l.Other]
		if m == nil {
			m = map[string]float64{}
			s.pairs[l.Other] = m
		}
		m[l.Model] += x.Value
	}
}
