package pricing

// Usage is a call's token counts as its provider reports them.
type Usage struct {
	Input        int64 // prompt / input tokens, as reported
	Output       int64 // completion / output tokens, as reported
	CacheRead    int64 // tokens read from the provider's prompt cache
	CacheWrite   int64 // tokens written to the prompt cache (5-minute)
	CacheWrite1h int64 // tokens written to the 1-hour prompt cache
	Reasoning    int64 // reasoning / thinking tokens
}

// Charge is a call's tokens in disjoint billing buckets, and its cost:
// Input + CacheRead + CacheWrite + CacheWrite1h + Output + Reasoning is
// every token billed.
type Charge struct {
	Input, CacheRead, CacheWrite, CacheWrite1h, Output, Reasoning int64
	Cost                                                          float64
	// LongContext is the threshold of the long-context tier applied, 0 if none.
	LongContext int64
}

// Prompt is the prompt's size: input, cache reads and cache writes.
func (c Charge) Prompt() int64 { return c.Input + c.CacheRead + c.CacheWrite + c.CacheWrite1h }

// Buckets splits u into disjoint billing buckets under a token convention,
// without pricing them.
func Buckets(u Usage, convention string) Charge {
	var c Charge
	switch convention {
	case ConventionAnthropic:
		c.Input, c.CacheRead, c.CacheWrite, c.CacheWrite1h = u.Input, u.CacheRead, u.CacheWrite, u.CacheWrite1h
		c.Reasoning = min(u.Reasoning, u.Output)
		c.Output = u.Output - c.Reasoning
	case ConventionGemini:
		c.CacheRead = min(u.CacheRead, u.Input)
		c.Input = u.Input - c.CacheRead
		c.Output, c.Reasoning = u.Output, u.Reasoning
	default: // OpenAI: cached and cache-written tokens are part of the prompt count
		c.CacheRead = min(u.CacheRead, u.Input)
		c.CacheWrite = min(u.CacheWrite, u.Input-c.CacheRead)
		c.CacheWrite1h = min(u.CacheWrite1h, u.Input-c.CacheRead-c.CacheWrite)
		c.Input = u.Input - c.CacheRead - c.CacheWrite - c.CacheWrite1h
		c.Reasoning = min(u.Reasoning, u.Output)
		c.Output = u.Output - c.Reasoning
	}
	return c
}

// Charge prices u on the entry stored under key, following the provider's
// token convention. The entry must be Priced.
func (e *Entry) Charge(key string, u Usage) Charge {
	c := Buckets(u, e.TokenConvention(key))
	// A prompt over a long-context threshold is billed whole at the tier's rates.
	r := e.Rates
	for _, t := range e.LongContext {
		if c.Prompt() > t.Above {
			r = e.Rates
			r.merge(t.Rates)
			c.LongContext = t.Above
		}
	}
	in, out := *r.Input, *r.Output
	read := or(r.CacheRead, in)
	write := or(r.CacheWrite, in)
	write1 := or(r.CacheWrite1h, write)
	reason := or(r.Reasoning, out)
	// Sum in dollars per million tokens, divide once: the result is the
	// correctly rounded cost for whole-number rates (1000 x 30 + 500 x 60 = 0.06).
	micro := float64(c.Input)*in + float64(c.CacheRead)*read + float64(c.CacheWrite)*write + float64(c.CacheWrite1h)*write1 +
		float64(c.Output)*out + float64(c.Reasoning)*reason
	c.Cost = micro / 1e6
	return c
}

func or(v *float64, fallback float64) float64 {
	if v != nil {
		return *v
	}
	return fallback
}
