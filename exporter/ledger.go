package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/fielderr"
	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/plans"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
)

// Tier sources, in the order quota.tier_sources lists them.
const (
	tierFromLog    = "log"
	tierFromRedis  = "redis"
	tierFromConfig = "config"
)

// QuotaConfig configures the usage ledger.
type QuotaConfig struct {
	Period quota.PeriodConfig `yaml:"period"`
	// TierSources orders where a user's tier comes from: log (the line's
	// tier field), redis (the user's hash or session), config (plans.users).
	// The first that knows the user wins; plans.default_tier is the last resort.
	TierSources []string `yaml:"tier_sources"`
	// KeepPeriods is how many billing periods the embedded ledger keeps.
	KeepPeriods int `yaml:"keep_periods"`
}

// DefaultQuotaConfig keeps three calendar months.
func DefaultQuotaConfig() QuotaConfig {
	return QuotaConfig{Period: quota.DefaultPeriodConfig(), TierSources: []string{tierFromLog, tierFromRedis, tierFromConfig},
		KeepPeriods: 3}
}

func (c QuotaConfig) validate() error {
	if err := c.Period.Validate(); err != nil {
		return fielderr.Under("period", err)
	}
	seen := map[string]bool{}
	for i, s := range c.TierSources {
		if s != tierFromLog && s != tierFromRedis && s != tierFromConfig || seen[s] {
			return fielderr.New(fmt.Sprintf("tier_sources[%d]", i), "must be log, redis or config, each once, not %q", s)
		}
		seen[s] = true
	}
	if c.KeepPeriods < 1 {
		return fielderr.New("keep_periods", "must be at least 1")
	}
	return nil
}

// defaultInstance names this exporter in a shared ledger: its host and
// state directory.
func defaultInstance(stateDir string) string {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	return host + ":" + stateDir
}

// commitJob is a batch of ledger increments on its way to Redis, with the
// checkpoint (read positions, LiteLLM counters) of the lines it came from.
type commitJob struct {
	Seq   uint64          `json:"seq"`
	Batch *quota.Ledger   `json:"batch"`
	State json.RawMessage `json:"state"`
}

// redisProgress is where this exporter is in its sequence of commits.
type redisProgress struct {
	Committed uint64     `json:"committed"`
	Inflight  *commitJob `json:"inflight,omitempty"`
}

// ledgerState is the ingester's part of the ledger. Without Redis, ledger
// holds every count of the periods kept; with Redis, the counts not yet
// handed to the committer.
type ledgerState struct {
	periods   quota.Periods
	cur       quota.Period // cache: the period of the last line
	newest    quota.Period // the newest period seen: the current one
	ledger    *quota.Ledger
	shared    bool // counts go to Redis
	progress  redisProgress
	tierOf    map[string]int // tier index last resolved per user
	lastState []byte         // the checkpoint state of the last cut, to skip empty commits
}

// maxTrackedUsers bounds the per-user tier memory and Redis tier lookups.
const maxTrackedUsers = 1_000_000

func (in *ingester) initLedger(shared bool) error {
	ps, err := quota.NewPeriods(in.cfg.Quota.Period)
	if err != nil {
		return err
	}
	in.ls = &ledgerState{periods: ps, ledger: quota.NewLedger(), shared: shared, tierOf: map[string]int{}}
	return nil
}

// periodOf returns the period of a time, from the cache when it can.
func (in *ingester) periodOf(t time.Time) quota.Period {
	ls := in.ls
	if !ls.cur.Contains(t) {
		ls.cur = ls.periods.Of(t)
	}
	if ls.cur.Start.After(ls.newest.Start) {
		ls.newest = ls.cur
		if !ls.shared {
			// Keep the last KeepPeriods periods.
			keep := ls.newest.Start
			for i := 1; i < in.cfg.Quota.KeepPeriods; i++ {
				keep = ls.periods.Of(keep.Add(-time.Hour)).Start
			}
			ls.ledger.Prune(keep.Format("2006-01-02"))
		}
	}
	return ls.cur
}

// countUsage puts a user's calls and tokens in the ledger, in the period of
// when they happened.
func (in *ingester) countUsage(user []byte, at time.Time, calls, tokens int64) {
	p := in.periodOf(at)
	in.ls.ledger.Add(p.ID, user, calls, tokens)
}

func (in *ingester) rememberTier(user []byte, tier int) {
	ls := in.ls
	if t, ok := ls.tierOf[string(user)]; (ok && t == tier) || (!ok && len(ls.tierOf) >= maxTrackedUsers) {
		return
	}
	ls.tierOf[string(user)] = tier
}

// redisTiers is the tier cache the tier refresher publishes: user -> tier,
// "" for users Redis has no tier for.
type redisTiers struct {
	tiers  atomic.Pointer[map[string]string]
	misses chan string
	asked  map[string]bool // owned by the ingester: misses already sent
}

// fromRedis looks a user up in the published cache, asking the refresher
// about users it has not seen. It never waits for Redis.
func (in *ingester) fromRedis(user []byte) (string, bool) {
	rt := in.redisTiers
	if rt == nil {
		return "", false
	}
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

// cut hands the counts since the last commit to the committer, as the next
// batch, with the checkpoint of the lines they came from. Nothing is cut
// while a batch is in flight.
func (in *ingester) cut() *commitJob {
	ls := in.ls
	if ls.progress.Inflight != nil {
		return nil
	}
	state, _ := json.Marshal(in.carriedState())
	if ls.ledger.Empty() && string(state) == string(ls.lastState) {
		return nil
	}
	job := &commitJob{Seq: ls.progress.Committed + 1, Batch: ls.ledger, State: state}
	ls.ledger = quota.NewLedger()
	ls.progress.Inflight = job
	ls.lastState = state
	return job
}

// committed records the committer's acknowledgement of a batch.
func (in *ingester) committed(job *commitJob) {
	ls := in.ls
	if ls.progress.Inflight == job {
		ls.progress.Inflight = nil
		ls.progress.Committed = job.Seq
	}
}

// carriedState is what a Redis checkpoint holds: where the lines counted so
// far were read to, and LiteLLM's counters as applied.
type carriedJSON struct {
	Positions json.RawMessage `json:"positions"`
	LiteLLM   json.RawMessage `json:"litellm,omitempty"`
}

func (in *ingester) carriedState() carriedJSON {
	pos, _ := json.Marshal(in.positionList())
	c := carriedJSON{Positions: pos}
	if in.litellm != nil {
		c.LiteLLM, _ = json.Marshal(in.litellm.Encode())
	}
	return c
}

// commitLoop sends batches to Redis in order, retrying each until Redis
// takes it: a batch is never dropped. It hands each back on acks once
// committed. It returns when jobs is closed, or when ctx ends while Redis is
// unreachable (the batch stays in the state file, to be sent next time).
func commitLoop(ctx context.Context, r *quota.Redis, instance string, jobs <-chan *commitJob, acks chan<- *commitJob,
	m *Metrics, log *slog.Logger, retry time.Duration) {
	up := true
	for job := range jobs {
		for {
			applied, err := r.Commit(context.WithoutCancel(ctx), instance, job.Seq, job.Batch, job.State)
			var gap *quota.GapError
			if errors.As(err, &gap) {
				log.Error("Redis lacks earlier ledger batches of this exporter (restarted without persistence?); their counts are lost there",
					"batch", job.Seq, "redis_has", gap.Have)
				job.Seq = gap.Have + 1
				continue
			}
			if err == nil {
				m.redisUp.Set(1)
				if !up {
					log.Info("Redis reachable again; held ledger increments committed", "batch", job.Seq)
					up = true
				}
				if applied {
					m.ledgerCommits.Inc()
				}
				acks <- job
				break
			}
			m.redisUp.Set(0)
			if up {
				log.Warn("Redis unreachable; ledger increments are held in memory and in the state file", "err", err)
				up = false
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
		}
	}
}

// refreshTiers keeps the Redis tier cache: it reads the tiers of users the
// ingester asks about, in batches, and every TTL those of all users seen
// and the session keys. A failed read keeps the cache as it is.
func refreshTiers(ctx context.Context, r *quota.Redis, rt *redisTiers, ttl time.Duration, log *slog.Logger) {
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
		tiers, err := r.Tiers(ctx, users)
		if err != nil {
			log.Debug("reading tiers from Redis failed", "err", err)
			return
		}
		for _, u := range users {
			known[u] = tiers[u]
		}
	}
	full := time.NewTicker(ttl)
	defer full.Stop()
	batch := time.NewTicker(200 * time.Millisecond)
	defer batch.Stop()
	var pending []string
	if s, err := r.SessionTiers(ctx); err == nil {
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
			if s, err := r.SessionTiers(ctx); err == nil {
				sessions = s
			}
			publish()
		}
	}
}

// quotaView is what the ingester publishes for the quota series and the
// admin API: the current period, the counts it holds, and the users' tiers
// and labels.
type quotaView struct {
	period quota.Period
	ledger *quota.Ledger // without Redis: all counts; with it: those not yet committed
	tiers  map[string]string
	labels map[string]string // user label, for users within the user cap
}

func (in *ingester) publishQuota(q *quotaState) {
	ls := in.ls
	v := &quotaView{period: ls.newest, ledger: ls.ledger.Clone(), tiers: make(map[string]string, len(ls.tierOf)),
		labels: make(map[string]string, len(in.users))}
	if ls.progress.Inflight != nil {
		v.ledger.Merge(ls.progress.Inflight.Batch)
	}
	for u, t := range ls.tierOf {
		v.tiers[u] = in.tiers[t]
	}
	for u, us := range in.users {
		v.labels[u] = us.label
	}
	q.view.Store(v)
}

// quotaState is shared by the ingester (which publishes views), the quota
// collector and the admin API (which read them), and the Redis reader.
type quotaState struct {
	view   atomic.Pointer[quotaView]
	cfg    *Config
	redis  *quota.Redis // nil without Redis
	mu     sync.Mutex
	cached map[string]cachedUsage // period -> last good read from Redis
}

type cachedUsage struct {
	at    time.Time
	usage map[string]quota.Usage
}

// redisCacheTTL bounds how often one exporter reads a period from Redis.
const redisCacheTTL = 2 * time.Second

// usage returns a period's usage by user: the shared ledger in Redis (its
// last good read when Redis is down) plus the counts not yet committed; or
// the embedded ledger.
func (q *quotaState) usage(ctx context.Context, period string) map[string]quota.Usage {
	v := q.view.Load()
	if v == nil {
		return nil
	}
	local := v.ledger.Users(period)
	if q.redis == nil {
		return local
	}
	q.mu.Lock()
	c, ok := q.cached[period]
	q.mu.Unlock()
	if !ok || time.Since(c.at) > redisCacheTTL {
		if u, err := q.redis.Usage(ctx, period); err == nil {
			c = cachedUsage{at: time.Now(), usage: u}
			q.mu.Lock()
			if q.cached == nil || len(q.cached) > 16 {
				q.cached = map[string]cachedUsage{}
			}
			q.cached[period] = c
			q.mu.Unlock()
		}
	}
	out := make(map[string]quota.Usage, len(c.usage)+len(local))
	for u, x := range c.usage {
		out[u] = x
	}
	for u, x := range local {
		y := out[u]
		out[u] = quota.Usage{Calls: x.Calls + y.Calls, Tokens: x.Tokens + y.Tokens}
	}
	return out
}

// tierOf returns a user's tier: as last resolved by the ingester, else as
// configured, else the default.
func (q *quotaState) tierOf(v *quotaView, user string) string {
	if t, ok := v.tiers[user]; ok {
		return t
	}
	if t, ok := q.cfg.Plans.Users[user]; ok {
		return t
	}
	return q.cfg.Plans.DefaultTier
}

func limitOf(t plans.Tier, resource string) plans.Limit {
	if resource == "calls" {
		return *t.Calls
	}
	return *t.Tokens
}

// ratio is used/limit, NaN for unlimited tiers.
func ratio(used int64, l plans.Limit) float64 {
	if l.IsUnlimited() {
		return math.NaN()
	}
	if l == 0 {
		return math.Inf(1)
	}
	return float64(used) / float64(l)
}

// quotaPublishInterval is how fresh the quota series and the admin API are.
const quotaPublishInterval = time.Second

// sharedLedger is the Redis side of the ledger, for the life of Run.
type sharedLedger struct {
	redis    *quota.Redis
	url      string
	instance string
	cfg      quota.RedisConfig
	m        *Metrics
}

func openShared(ctx context.Context, cfg quota.RedisConfig, stateDir string, m *Metrics, log *slog.Logger) (*sharedLedger, error) {
	r, err := quota.NewRedis(cfg)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	instance := cfg.Instance
	if instance == "" {
		instance = defaultInstance(stateDir)
	}
	m.enableRedis()
	if err := r.Ping(ctx); err != nil {
		m.redisUp.Set(0)
		log.Warn("Redis unreachable at start; the ledger keeps its counts until it returns", "err", err)
	} else {
		m.redisUp.Set(1)
	}
	log.Info("ledger shared in Redis", "instance", instance)
	return &sharedLedger{redis: r, url: cfg.URL, instance: instance, cfg: cfg, m: m}, nil
}

// reconcile picks up where the last run left off. The local state file and
// Redis each record how many batches were committed; the newer wins:
//   - Redis has the batch that was in flight: it was committed; drop it;
//   - Redis has batches the file does not know (the file is older than the
//     last commits): everything up to Redis' checkpoint is in the ledger, so
//     reading resumes from there, with nothing held;
//   - Redis has fewer than the file: Redis lost data; carry on numbering
//     from what it has.
func (s *sharedLedger) reconcile(ctx context.Context, local carried, log *slog.Logger) carried {
	seq, state, err := s.redis.Checkpoint(ctx, s.instance)
	if err != nil {
		return local // unreachable: the committer sorts it out when Redis returns
	}
	p := &local.progress
	switch {
	case p.Inflight != nil && seq == p.Inflight.Seq:
		p.Committed, p.Inflight = seq, nil
	case p.Inflight == nil && seq == p.Committed, p.Inflight != nil && seq == p.Committed:
		// In step: what the file holds is not in Redis yet.
	case seq > p.Committed:
		var cs carriedJSON
		if err := json.Unmarshal(state, &cs); err != nil {
			log.Error("Redis checkpoint unreadable; continuing from the state file", "err", err)
			return local
		}
		log.Info("resuming from the Redis checkpoint, newer than the state file", "batch", seq)
		next := carried{progress: redisProgress{Committed: seq}, ledger: quota.NewLedger()}
		_ = json.Unmarshal(cs.Positions, &next.positions)
		if len(cs.LiteLLM) > 0 {
			var c litellm.Counters
			if json.Unmarshal(cs.LiteLLM, &c) == nil {
				next.litellm = c.Decode()
			}
		}
		return next
	default:
		log.Error("Redis has fewer ledger batches of this exporter than it committed (restarted without persistence?)",
			"redis", seq, "committed", p.Committed)
		p.Committed = seq
		if p.Inflight != nil {
			p.Inflight.Seq = seq + 1
		}
	}
	return local
}

// shipper carries batches from the ingest loop to Redis.
type shipper struct {
	jobs       chan *commitJob
	acks       chan *commitJob
	flush      *time.Ticker
	maxPending int
	done       chan struct{}
	timeout    time.Duration
}

func (s *sharedLedger) start(ctx context.Context, cfg *Config, in *ingester, log *slog.Logger) *shipper {
	sh := &shipper{jobs: make(chan *commitJob, 1), acks: make(chan *commitJob, 2), flush: time.NewTicker(cfg.Redis.FlushInterval),
		maxPending: cfg.Redis.MaxPending, done: make(chan struct{}), timeout: cfg.Redis.Timeout}
	go func() {
		defer close(sh.done)
		commitLoop(ctx, s.redis, s.instance, sh.jobs, sh.acks, s.m, log, min(cfg.Redis.FlushInterval, time.Second))
	}()
	if inflight := in.ls.progress.Inflight; inflight != nil {
		sh.jobs <- inflight
	}
	for _, src := range cfg.Quota.TierSources {
		if src == tierFromRedis {
			in.redisTiers = &redisTiers{misses: make(chan string, 4096), asked: map[string]bool{}}
			go refreshTiers(ctx, s.redis, in.redisTiers, cfg.Redis.TierTTL, log)
		}
	}
	return sh
}

// finish sends what is left and waits, at most a timeout, for Redis to take
// it; what it does not take stays in the state file.
func (sh *shipper) finish(in *ingester) {
	if job := in.cut(); job != nil {
		sh.jobs <- job
	}
	close(sh.jobs)
	timer := time.NewTimer(sh.timeout + time.Second)
	defer timer.Stop()
	for {
		select {
		case job := <-sh.acks:
			in.committed(job)
		case <-sh.done:
			for {
				select {
				case job := <-sh.acks:
					in.committed(job)
				default:
					return
				}
			}
		case <-timer.C:
			return
		}
	}
}
