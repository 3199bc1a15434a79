package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a token bucket per key (a user, an organisation, an address).
// Keys idle long enough for their bucket to refill are forgotten, so a
// stream of new addresses does not grow it without bound.
type Limiter struct {
	Bucket
	Now func() time.Time // the clock; time.Now when nil

	mu     sync.Mutex
	keys   map[string]*keyBucket
	swept  time.Time
	refill time.Duration
}

type keyBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter returns a limiter of b; nil when b is off.
func NewLimiter(b Bucket, now func() time.Time) *Limiter {
	if b.PerMinute <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	refill := time.Duration(float64(b.Burst) / float64(b.PerMinute) * float64(time.Minute))
	return &Limiter{Bucket: b, Now: now, keys: map[string]*keyBucket{}, refill: max(refill, time.Minute)}
}

// Allow takes a token of key; when there is none it says how long until one.
// A nil limiter allows everything.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.refill {
		for k, b := range l.keys {
			if now.Sub(b.seen) > l.refill {
				delete(l.keys, k)
			}
		}
		l.swept = now
	}
	b := l.keys[key]
	if b == nil {
		b = &keyBucket{lim: rate.NewLimiter(rate.Limit(float64(l.PerMinute)/60), l.Burst)}
		l.keys[key] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Len is the number of keys remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
