package litellm

type usageKey struct {
	kind   Kind
	labels Labels
}

// Usage is what a scrape adds, by kind and labels, with what resolves the
// model of a series that lacks the configured model label.
type Usage struct {
	amounts map[usageKey]float64
	pairs   map[string]map[string]float64 // the snapshot's, cumulative
}

// Empty reports whether the scrape added nothing.
func (u Usage) Empty() bool { return len(u.amounts) == 0 }

// SpendKey identifies spend: per model, user, team, API key and organisation.
type SpendKey struct {
	Model, User, Team, Key, Org string
}

// TokenKey identifies tokens per model, user and direction.
type TokenKey struct {
	Model, User, Direction string
}

// RequestKey identifies requests per model and status (success, failure).
type RequestKey struct {
	Model, Status string
}

// Amounts are a scrape's increments in usage-exporter's terms.
type Amounts struct {
	Spend map[SpendKey]float64
	// Tokens are in disjoint billing buckets: input, output, cache_read,
	// cache_write, reasoning.
	Tokens   map[TokenKey]float64
	Requests map[RequestKey]float64
}

// Token directions, as usage_llm_tokens_total names them.
const (
	DirInput      = "input"
	DirOutput     = "output"
	DirCacheRead  = "cache_read"
	DirCacheWrite = "cache_write"
	DirReasoning  = "reasoning"
)

// Resolve turns the increments into usage-exporter's series. A series
// without the configured model label takes the model of the token series
// that carry both labels with the same other label (and the same user,
// when they exist), shared in proportion to their tokens: first this
// scrape's token increments, then LiteLLM's totals; with neither, the
// other label's value stands in. Token totals are split into disjoint
// buckets: input less cache reads and writes, output less reasoning.
func (u Usage) Resolve() Amounts {
	out := Amounts{Spend: map[SpendKey]float64{}, Tokens: map[TokenKey]float64{}, Requests: map[RequestKey]float64{}}
	type userPair struct{ other, user string }
	byUser := map[userPair]map[string]float64{}
	byOther := map[string]map[string]float64{}
	for k, v := range u.amounts {
		l := k.labels
		if (k.kind != InputTokens && k.kind != OutputTokens) || l.Model == "" || l.Other == "" {
			continue
		}
		addWeight(byUser, userPair{l.Other, l.User}, l.Model, v)
		addWeight(byOther, l.Other, l.Model, v)
	}
	weights := func(l Labels) map[string]float64 {
		switch {
		case l.Model != "":
			return map[string]float64{l.Model: 1}
		case l.Other == "":
			return map[string]float64{"unknown": 1}
		}
		for _, w := range []map[string]float64{byUser[userPair{l.Other, l.User}], byOther[l.Other], u.pairs[l.Other]} {
			if total(w) > 0 {
				return w
			}
		}
		return map[string]float64{l.Other: 1}
	}
	type modelUser struct{ model, user string }
	tokens := map[modelUser]*[numKinds]float64{}
	requests := map[string]*[numKinds]float64{}
	for k, v := range u.amounts {
		l := k.labels
		w := weights(l)
		sum := total(w)
		for model, weight := range w {
			share := v
			if len(w) > 1 {
				share = v * weight / sum
			}
			switch k.kind {
			case Spend:
				out.Spend[SpendKey{Model: model, User: l.User, Team: l.Team, Key: l.Key, Org: l.Org}] += share
			case InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, ReasoningTokens:
				a := tokens[modelUser{model, l.User}]
				if a == nil {
					a = new([numKinds]float64)
					tokens[modelUser{model, l.User}] = a
				}
				a[k.kind] += share
			default:
				a := requests[model]
				if a == nil {
					a = new([numKinds]float64)
					requests[model] = a
				}
				a[k.kind] += share
			}
		}
	}
	for mu, a := range tokens {
		put := func(dir string, v float64) {
			if v > 0 {
				out.Tokens[TokenKey{Model: mu.model, User: mu.user, Direction: dir}] += v
			}
		}
		put(DirInput, a[InputTokens]-a[CacheReadTokens]-a[CacheWriteTokens])
		put(DirOutput, a[OutputTokens]-a[ReasoningTokens])
		put(DirCacheRead, a[CacheReadTokens])
		put(DirCacheWrite, a[CacheWriteTokens])
		put(DirReasoning, a[ReasoningTokens])
	}
	for model, a := range requests {
		// Failures are counted apart only where requests carry no status code.
		failedOfTotal := min(a[FailedRequests], a[Requests])
		if v := a[OKRequests] + a[Requests] - failedOfTotal; v > 0 {
			out.Requests[RequestKey{Model: model, Status: "success"}] += v
		}
		if v := a[ErrorRequests] + failedOfTotal; v > 0 {
			out.Requests[RequestKey{Model: model, Status: "failure"}] += v
		}
	}
	return out
}

func addWeight[K comparable](m map[K]map[string]float64, k K, model string, v float64) {
	w := m[k]
	if w == nil {
		w = map[string]float64{}
		m[k] = w
	}
	w[model] += v
}

func total(w map[string]float64) float64 {
	s := 0.0
	for _, v := range w {
		s += v
	}
	return s
}
