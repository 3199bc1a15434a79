package plans

import (
	"fmt"
	"slices"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// Where a user's tier can come from, in the order a configuration lists them.
const (
	SourceLog    = "log"    // the log line's tier field
	SourceRedis  = "redis"  // the user's hash or session in Redis
	SourceConfig = "config" // plans.users
)

// DefaultSources asks the line first, then Redis, then the configuration.
func DefaultSources() []string { return []string{SourceLog, SourceRedis, SourceConfig} }

// ValidateSources checks a list of tier sources: known names, each once.
func ValidateSources(sources []string) error {
	for i, s := range sources {
		known := s == SourceLog || s == SourceRedis || s == SourceConfig || s == SourceKeycloak
		if !known || slices.Index(sources, s) != i {
			return fielderr.New(fmt.Sprintf("[%d]", i), "must be log, redis, keycloak or config, each once, not %q", s)
		}
	}
	return nil
}

// Lookup is a source that knows some users' tiers. It must not block.
type Lookup interface {
	Tier(user []byte) (string, bool)
}

// Resolver picks each user's tier from the first source that knows it, and
// numbers the tiers: the bounded set of tier label values.
type Resolver struct {
	names   []string
	index   map[string]int
	sources []string
	users   map[string]int
	lookups map[string]Lookup // by source: Redis, Keycloak
	def     int
}

// NewResolver resolves tiers of cfg from sources in order; lookups are the
// sources that are services (SourceRedis, SourceKeycloak), absent when not used.
func NewResolver(cfg Config, sources []string, lookups map[string]Lookup) *Resolver {
	r := &Resolver{names: append(cfg.Names(), AnonymousTier), index: map[string]int{}, sources: sources,
		users: map[string]int{}, lookups: lookups}
	for i, t := range r.names {
		r.index[t] = i
	}
	r.def = r.index[cfg.DefaultTier]
	for u, t := range cfg.Users {
		r.users[u] = r.index[t]
	}
	return r
}

// Names are the tier label values by index; the last is AnonymousTier.
func (r *Resolver) Names() []string { return r.names }

// Default is the index of the default tier.
func (r *Resolver) Default() int { return r.def }

// Configured calls f with each user of plans.users and their tier index.
func (r *Resolver) Configured(f func(user string, tier int)) {
	for u, t := range r.users {
		f(u, t)
	}
}

// Anonymous is the index of the tier of requests without a user.
func (r *Resolver) Anonymous() int { return len(r.names) - 1 }

// configured returns the index of a configured tier name; the anonymous
// tier is not one.
func (r *Resolver) configured(name []byte) (int, bool) {
	i, ok := r.index[string(name)]
	return i, ok && i < r.Anonymous()
}

// Resolve returns the index of user's tier: from the first source that
// knows it (lineTier is the line's tier field), else the default tier.
func (r *Resolver) Resolve(user, lineTier []byte) int {
	for _, src := range r.sources {
		switch src {
		case SourceLog:
			if i, ok := r.configured(lineTier); ok && len(lineTier) > 0 {
				return i
			}
		case SourceRedis, SourceKeycloak:
			lookup := r.lookups[src]
			if lookup == nil {
				continue
			}
			if t, ok := lookup.Tier(user); ok {
				if i, ok := r.configured([]byte(t)); ok {
					return i
				}
			}
		case SourceConfig:
			if i, ok := r.users[string(user)]; ok {
				return i
			}
		}
	}
	return r.def
}
