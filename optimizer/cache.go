package optimizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache holds reports by key. Entries outlive their freshness (the engine
// decides what is fresh from GeneratedAt) so that a failed run can still
// serve the last good one.
type Cache interface {
	Get(ctx context.Context, key string) (*Report, error) // nil, nil when absent
	Put(ctx context.Context, key string, r *Report, keep time.Duration) error
	// Lock claims the computation of key for ttl; false when another holder
	// has it. Unlock releases a claim.
	Lock(ctx context.Context, key string, ttl time.Duration) (bool, error)
	Unlock(ctx context.Context, key string) error
}

// MemoryCache is the cache of a single sidecar.
type MemoryCache struct {
	mu      sync.Mutex
	entries map[string]memoryEntry
}

type memoryEntry struct {
	report  *Report
	expires time.Time
}

// NewMemoryCache returns an empty cache.
func NewMemoryCache() *MemoryCache { return &MemoryCache{entries: map[string]memoryEntry{}} }

// Get returns the entry of key unless it expired.
func (c *MemoryCache) Get(_ context.Context, key string) (*Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || time.Now().After(e.expires) {
		delete(c.entries, key)
		return nil, nil
	}
	return e.report, nil
}

// Put stores r for keep, dropping expired entries and, past maxWindows,
// the one that expires first.
func (c *MemoryCache) Put(_ context.Context, key string, r *Report, keep time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.entries[key] = memoryEntry{report: r, expires: now.Add(keep)}
	for k, e := range c.entries {
		if now.After(e.expires) {
			delete(c.entries, k)
		}
	}
	for len(c.entries) > maxWindows {
		first := ""
		for k, e := range c.entries {
			if first == "" || e.expires.Before(c.entries[first].expires) {
				first = k
			}
		}
		delete(c.entries, first)
	}
	return nil
}

// Lock always succeeds: within one process the engine already runs one
// computation per key.
func (c *MemoryCache) Lock(context.Context, string, time.Duration) (bool, error) { return true, nil }

// Unlock does nothing.
func (c *MemoryCache) Unlock(context.Context, string) error { return nil }

// RedisCache shares reports between sidecars: the first to find a key stale
// takes a lock (SET NX with a TTL) and computes; the others wait for its
// result rather than repeat the queries.
type RedisCache struct {
	client  *redis.Client
	prefix  string
	timeout time.Duration
	owner   string
	// downUntil skips Redis for a while after a failure, so that requests
	// do not each wait for a dial timeout while it is away.
	downUntil  atomic.Int64
	retryAfter time.Duration
	now        func() time.Time
}

// redisRetryAfter is how long Redis is skipped after a failure.
const redisRetryAfter = 5 * time.Second

var errCacheSkipped = errors.New("redis cache skipped after a recent failure")

// do runs op unless Redis failed recently, and notes a failure.
func (c *RedisCache) do(ctx context.Context, op func(ctx context.Context) error) error {
	if c.now().UnixNano() < c.downUntil.Load() {
		return errCacheSkipped
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := op(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		c.downUntil.Store(c.now().Add(c.retryAfter).UnixNano())
	}
	return err
}

// NewRedisCache connects lazily to url.
func NewRedisCache(url, prefix string, timeout time.Duration) (*RedisCache, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
	opts.MaxRetries, opts.DialerRetries = 1, 1
	return &RedisCache{client: redis.NewClient(opts), prefix: prefix, timeout: timeout, retryAfter: redisRetryAfter,
		now: time.Now, owner: fmt.Sprintf("%d", time.Now().UnixNano())}, nil
}

// Close closes the connections.
func (c *RedisCache) Close() error { return c.client.Close() }

// Get reads and decodes a report.
func (c *RedisCache) Get(ctx context.Context, key string) (*Report, error) {
	var data []byte
	err := c.do(ctx, func(ctx context.Context) (err error) {
		data, err = c.client.Get(ctx, c.prefix+"report:"+key).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("cached report %s: %w", key, err)
	}
	return &r, nil
}

// Put stores a report with an expiry of keep.
func (c *RedisCache) Put(ctx context.Context, key string, r *Report, keep time.Duration) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return c.do(ctx, func(ctx context.Context) error {
		return c.client.Set(ctx, c.prefix+"report:"+key, data, keep).Err()
	})
}

// Lock claims key with SET NX PX.
func (c *RedisCache) Lock(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	var ok bool
	err := c.do(ctx, func(ctx context.Context) (err error) {
		ok, err = c.client.SetNX(ctx, c.prefix+"lock:"+key, c.owner, ttl).Result()
		return err
	})
	return ok, err
}

// unlockScript deletes the lock only if this sidecar still holds it.
var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Unlock releases this sidecar's claim.
func (c *RedisCache) Unlock(ctx context.Context, key string) error {
	return c.do(ctx, func(ctx context.Context) error {
		return unlockScript.Run(ctx, c.client, []string{c.prefix + "lock:" + key}, c.owner).Err()
	})
}
