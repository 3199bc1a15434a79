package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// RedisConfig configures the shared ledger and Redis tier lookups.
type RedisConfig struct {
	// URL is redis://[user:password@]host:port/db; empty turns Redis off.
	URL string `yaml:"url,omitempty"`
	// KeyPrefix starts every key this exporter writes.
	KeyPrefix string `yaml:"key_prefix"`
	// Instance names this exporter's checkpoint; exporters sharing a ledger
	// need distinct names (the default is the host name and state directory).
	Instance string `yaml:"instance,omitempty"`
	// FlushInterval is how often ledger increments are committed.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Timeout of one Redis operation.
	Timeout time.Duration `yaml:"timeout"`
	// MaxPending bounds the ledger entries held while Redis is unreachable;
	// at the bound, reading logs pauses (nothing is dropped) until Redis returns.
	MaxPending int `yaml:"max_pending"`
}

// DefaultRedisConfig commits every second; Redis is off until a URL is set.
func DefaultRedisConfig() RedisConfig {
	return RedisConfig{KeyPrefix: "usage:", FlushInterval: time.Second, Timeout: 2 * time.Second, MaxPending: 1_000_000}
}

// Enabled reports whether a URL is configured.
func (c RedisConfig) Enabled() bool { return c.URL != "" }

// Validate checks the settings.
func (c RedisConfig) Validate() error {
	if c.URL != "" {
		if _, err := redis.ParseURL(c.URL); err != nil {
			return fielderr.New("url", "%v", err)
		}
	}
	if c.KeyPrefix == "" {
		return fielderr.New("key_prefix", "must not be empty")
	}
	if c.FlushInterval < 10*time.Millisecond {
		return fielderr.New("flush_interval", "must be at least 10ms, not %s", c.FlushInterval)
	}
	if c.Timeout <= 0 {
		return fielderr.New("timeout", "must be positive")
	}
	if c.MaxPending < 1 {
		return fielderr.New("max_pending", "must be at least 1")
	}
	return nil
}

// Redis is the shared ledger's side in Redis: atomic, numbered commits and
// consistent reads.
type Redis struct {
	cfg    RedisConfig
	client *redis.Client
}

// NewClient connects lazily to url: nothing is dialled until the first
// command. Every operation is bounded by timeout.
func NewClient(url string, timeout time.Duration) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
	opts.MaxRetries = 1
	return redis.NewClient(opts), nil
}

// NewRedis uses client for the ledger of cfg.
func NewRedis(client *redis.Client, cfg RedisConfig) *Redis { return &Redis{cfg: cfg, client: client} }

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	return r.client.Ping(ctx).Err()
}

func (r *Redis) ledgerKey(period string) string { return r.cfg.KeyPrefix + "ledger:" + period }

func (r *Redis) checkpointKey(instance string) string {
	return r.cfg.KeyPrefix + "checkpoint:" + instance
}

// Ledger fields: "c:<user>" for calls, "t:<user>" for tokens.
const (
	callsField  = "c:"
	tokensField = "t:"
)

// ledgerTTL keeps past periods' hashes for a year and a little.
const ledgerTTL = 400 * 24 * time.Hour

// GapError is a commit whose predecessor is not in Redis: Redis lost data.
type GapError struct{ Have, Seq uint64 }

func (e *GapError) Error() string {
	return fmt.Sprintf("ledger batch out of sequence: Redis has batch %d, this is %d", e.Have, e.Seq)
}

// Commit adds a batch of increments to the shared ledger and stores the
// instance's checkpoint (the read positions they came from) in one
// MULTI/EXEC. Batches are numbered; one already committed is acknowledged
// without being applied again, so a commit whose reply was lost can be
// retried safely. It reports whether this call applied the batch.
func (r *Redis) Commit(ctx context.Context, instance string, seq uint64, batch *Ledger, checkpoint []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	key := r.checkpointKey(instance)
	applied := false
	err := r.client.Watch(ctx, func(tx *redis.Tx) error {
		have, err := seqOf(tx.HGet(ctx, key, "seq"))
		if err != nil {
			return err
		}
		if have >= seq {
			return nil // committed before: the reply was lost
		}
		if have != seq-1 {
			return &GapError{Have: have, Seq: seq}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, period := range batch.Periods() {
				lk := r.ledgerKey(period)
				for user, u := range batch.periods[period] {
					if u.Calls != 0 {
						p.HIncrBy(ctx, lk, callsField+user, u.Calls)
					}
					if u.Tokens != 0 {
						p.HIncrBy(ctx, lk, tokensField+user, u.Tokens)
					}
				}
				p.Expire(ctx, lk, ledgerTTL)
			}
			p.HSet(ctx, key, "seq", seq, "state", checkpoint)
			return nil
		})
		applied = err == nil
		return err
	}, key)
	return applied, err
}

func seqOf(cmd *redis.StringCmd) (uint64, error) {
	s, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(s, 10, 64)
}

// Checkpoint returns the last committed batch number and checkpoint of an
// instance; seq 0 when it never committed.
func (r *Redis) Checkpoint(ctx context.Context, instance string) (seq uint64, state []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	vals, err := r.client.HMGet(ctx, r.checkpointKey(instance), "seq", "state").Result()
	if err != nil {
		return 0, nil, err
	}
	if s, ok := vals[0].(string); ok {
		if seq, err = strconv.ParseUint(s, 10, 64); err != nil {
			return 0, nil, fmt.Errorf("checkpoint of %s: %w", instance, err)
		}
	}
	if s, ok := vals[1].(string); ok {
		state = []byte(s)
	}
	return seq, state, nil
}

// Usage reads a period's usage by user from the shared ledger.
func (r *Redis) Usage(ctx context.Context, period string) (map[string]Usage, error) {
	u, _, err := r.UsageAt(ctx, period, "")
	return u, err
}

// UsageAt reads a period's usage by user and, in the same transaction, the
// last batch instance committed: the usage holds that instance's batches up
// to seq and none after.
func (r *Redis) UsageAt(ctx context.Context, period, instance string) (map[string]Usage, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var all *redis.MapStringStringCmd
	var seqCmd *redis.StringCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, r.ledgerKey(period))
		if instance != "" {
			seqCmd = p.HGet(ctx, r.checkpointKey(instance), "seq")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, err
	}
	var seq uint64
	if seqCmd != nil {
		if seq, err = seqOf(seqCmd); err != nil {
			return nil, 0, err
		}
	}
	fields, err := all.Result()
	if err != nil {
		return nil, 0, err
	}
	out := make(map[string]Usage, len(fields)/2)
	for f, v := range fields {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || len(f) < 2 {
			continue
		}
		user := f[2:]
		u := out[user]
		switch f[:2] {
		case callsField:
			u.Calls = n
		case tokensField:
			u.Tokens = n
		default:
			continue
		}
		out[user] = u
	}
	return out, seq, nil
}

// Forget removes users from every period of the shared ledger and returns
// how many hash fields went.
func (r *Redis) Forget(ctx context.Context, users ...string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*r.cfg.Timeout)
	defer cancel()
	fields := make([]string, 0, 2*len(users))
	for _, u := range users {
		fields = append(fields, callsField+u, tokensField+u)
	}
	n := 0
	iter := r.client.Scan(ctx, 0, r.ledgerKey("*"), 1000).Iterator()
	for iter.Next(ctx) {
		d, err := r.client.HDel(ctx, iter.Val(), fields...).Result()
		if err != nil {
			return n, err
		}
		n += int(d)
	}
	return n, iter.Err()
}
