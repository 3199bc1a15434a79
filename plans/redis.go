package plans

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// RedisConfig says where Redis keeps users' tiers, as the system this
// replaces stored them.
type RedisConfig struct {
	// UserKey is the hash holding a user's tier, {user} standing for the id.
	UserKey string `yaml:"user_key"`
	// TierField is the field of that hash.
	TierField string `yaml:"tier_field"`
	// SessionPattern matches session keys whose JSON values hold user_id and tier.
	SessionPattern string `yaml:"session_pattern"`
	// TierTTL is how long a tier read from Redis is used before it is read again.
	TierTTL time.Duration `yaml:"tier_ttl"`
}

// DefaultRedisConfig reads user:{id} hashes and session:* keys every minute.
func DefaultRedisConfig() RedisConfig {
	return RedisConfig{UserKey: "user:{user}", TierField: "tier", SessionPattern: "session:*", TierTTL: time.Minute}
}

// Validate checks the settings.
func (c RedisConfig) Validate() error {
	if !strings.Contains(c.UserKey, "{user}") {
		return fielderr.New("user_key", "must contain {user}, not %q", c.UserKey)
	}
	if c.TierTTL <= 0 {
		return fielderr.New("tier_ttl", "must be positive")
	}
	return nil
}

// maxTrackedUsers bounds the users RedisTiers asks Redis about.
const maxTrackedUsers = 1_000_000

// RedisTiers is the Redis tier source: a cache that a refresher keeps, so
// that a lookup never waits for Redis.
type RedisTiers struct {
	client  *redis.Client
	cfg     RedisConfig
	timeout time.Duration
	log     *slog.Logger
	tiers   atomic.Pointer[map[string]string] // user -> tier; "" when Redis has none
	misses  chan string
	asked   map[string]bool // the ingest goroutine's: users already asked about
}

// NewRedisTiers reads tiers through client, each operation within timeout.
func NewRedisTiers(client *redis.Client, cfg RedisConfig, timeout time.Duration, log *slog.Logger) *RedisTiers {
	return &RedisTiers{client: client, cfg: cfg, timeout: timeout, log: log, misses: make(chan string, 4096),
		asked: map[string]bool{}}
}

// Tier implements Lookup: the cached tier, asking the refresher about users
// it has not seen. One goroutine at a time may call it.
func (rt *RedisTiers) Tier(user []byte) (string, bool) {
	if m := rt.tiers.Load(); m != nil {
		if t, ok := (*m)[string(user)]; ok {
			return t, t != ""
		}
	}
	if !rt.asked[string(user)] && len(rt.asked) < maxTrackedUsers {
		select {
		case rt.misses <- string(user):
			rt.asked[string(user)] = true
		default: // the refresher is busy; ask again on a later line
		}
	}
	return "", false
}

// Run keeps the cache until ctx ends: it reads the tiers of users asked
// about, in batches, and every TTL those of all users seen and the session
// keys. A failed read keeps the cache as it is.
func (rt *RedisTiers) Run(ctx context.Context) {
	known := map[string]string{}
	var sessions map[string]string
	publish := func() {
		m := make(map[string]string, len(known)+len(sessions))
		for u, t := range known {
			m[u] = t
		}
		for u, t := range sessions {
			if m[u] == "" {
				m[u] = t
			}
		}
		rt.tiers.Store(&m)
	}
	lookup := func(users []string) {
		tiers, err := rt.Tiers(ctx, users)
		if err != nil {
			rt.log.Debug("reading tiers from Redis failed", "err", err)
			return
		}
		for _, u := range users {
			known[u] = tiers[u]
		}
	}
	full := time.NewTicker(rt.cfg.TierTTL)
	defer full.Stop()
	batch := time.NewTicker(200 * time.Millisecond)
	defer batch.Stop()
	var pending []string
	if s, err := rt.SessionTiers(ctx); err == nil {
		sessions = s
		publish()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-rt.misses:
			pending = append(pending, u)
		case <-batch.C:
			if len(pending) > 0 {
				lookup(pending)
				pending = pending[:0]
				publish()
			}
		case <-full.C:
			users := make([]string, 0, len(known))
			for u := range known {
				users = append(users, u)
			}
			for len(users) > 0 {
				n := min(len(users), 1000)
				lookup(users[:n])
				users = users[n:]
			}
			if s, err := rt.SessionTiers(ctx); err == nil {
				sessions = s
			}
			publish()
		}
	}
}

// Tiers reads users' tiers from their hashes, in one round trip.
func (rt *RedisTiers) Tiers(ctx context.Context, users []string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(users))
	_, err := rt.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.HGet(ctx, strings.ReplaceAll(rt.cfg.UserKey, "{user}", u), rt.cfg.TierField)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make(map[string]string, len(users))
	for i, c := range cmds {
		if v, err := c.Result(); err == nil && v != "" {
			out[users[i]] = v
		}
	}
	return out, nil
}

// SessionTiers scans the session keys, JSON values with user_id and tier,
// and returns the tier of each user that has a session.
func (rt *RedisTiers) SessionTiers(ctx context.Context) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*rt.timeout)
	defer cancel()
	out := map[string]string{}
	var cursor uint64
	for {
		keys, next, err := rt.client.Scan(ctx, cursor, rt.cfg.SessionPattern, 1000).Result()
		if err != nil {
			return nil, err
		}
		if len(keys) > 0 {
			vals, err := rt.client.MGet(ctx, keys...).Result()
			if err != nil {
				return nil, err
			}
			for _, v := range vals {
				s, ok := v.(string)
				if !ok {
					continue
				}
				var sess struct {
					UserID json.RawMessage `json:"user_id"`
					Tier   string          `json:"tier"`
				}
				if json.Unmarshal([]byte(s), &sess) != nil || sess.Tier == "" || len(sess.UserID) == 0 {
					continue
				}
				var id string
				if json.Unmarshal(sess.UserID, &id) != nil {
					id = string(sess.UserID) // a numeric id
				}
				out[id] = sess.Tier
			}
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}
