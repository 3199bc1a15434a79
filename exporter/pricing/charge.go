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
// Input + CacheRead + CacheWrite + Output + Reasoning is every token billed.
type Charge struct {
	Input, CacheRead, CacheWrite, Output, Reasoning int64
	Cost                                            float64
	// LongContext is the threshold of the long-context tier applied, 0 if none.
	LongContext int64
}

// Charge prices u on the entry stored under key, following the provider's
// token convention. The entry must be Priced.
func (e *Entry) Charge(key string, u Usage) Charge {
	var c Charge
	var write5, write1h int64
	switch e.TokenConvention(key) {
	case ConventionAnthropic:
		c.Input, c.CacheRead, write5, write1h = u.Input, u.CacheRead, u.CacheWrite, u.CacheWrite1h
		c.Reasoning = min(u.Reasoning, u.Output)
		c.Output = u.Output - c.Reasoning
	case ConventionGemini:
		c.CacheRead = min(u.CacheRead, u.Input)
		c.Input = u.Input - c.CacheRead
		c.Output, c.Reasoning = u.Output, u.Reasoning
	default: // OpenAI: cached and cache-written tokens are part of the prompt count
		c.CacheRead = min(u.CacheRead, u.Input)
		write5 = min(u.CacheWrite, u.Input-c.CacheRead)
		write1h = min(u.CacheWrite1h, u.Input-c.CacheRead-write5)
		c.Input = u.Input - c.CacheRead - write5 - write1h
		c.Reasoning = min(u.Reasoning, u.Output)
		c.Output = u.Output - c.Reasoning
	}
	c.CacheWrite = write5 + write1h

	// A prompt over a long-context threshold is billed whole at the tier's rates.
	r := e.Rates
	prompt := c.Input + c.CacheRead + c.CacheWrite
	for _, t := range e.LongContext {
		if prompt > t.Above {
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
	micro := float64(c.Input)*in + float64(c.CacheRead)*read + float64(write5)*write + float64(write1h)*write1 +
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
