// Package plans describes the plan tiers users are on: their limits per
// billing period, their monthly prices, and which user is on which tier.
package plans

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
	"gopkg.in/yaml.v3"
)

// Limit is a per-period allowance; Unlimited when negative.
type Limit int64

// Unlimited is the Limit of a tier without a cap.
const Unlimited Limit = -1

// IsUnlimited reports whether l caps nothing.
func (l Limit) IsUnlimited() bool { return l < 0 }

// UnmarshalYAML accepts a non-negative integer or the word "unlimited".
func (l *Limit) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && strings.EqualFold(n.Value, "unlimited") {
		*l = Unlimited
		return nil
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
	if n.Kind != yaml.ScalarNode || err != nil || v < 0 {
		return fmt.Errorf("line %d: limit must be a non-negative integer or \"unlimited\", not %q", n.Line, n.Value)
	}
	*l = Limit(v)
	return nil
}

// MarshalYAML writes "unlimited" for Unlimited.
func (l Limit) MarshalYAML() (any, error) {
	if l.IsUnlimited() {
		return "unlimited", nil
	}
	return int64(l), nil
}

// Tier is one plan.
type Tier struct {
	Name string `yaml:"name"`
	// Calls and Tokens are the allowances per billing period: a number or
	// "unlimited". Both are required, so that a forgotten key is not a zero.
	Calls  *Limit `yaml:"calls"`
	Tokens *Limit `yaml:"tokens"`
	// MonthlyPrice is what a user on this tier pays per month, in dollars.
	MonthlyPrice float64 `yaml:"monthly_price"`
}

// Config lists the tiers and assigns users to them.
type Config struct {
	Tiers []Tier `yaml:"tiers"`
	// DefaultTier is the tier of users nothing else assigns. It need not be
	// one of Tiers: a tier without limits shows no quota.
	DefaultTier string `yaml:"default_tier"`
	// Users maps user ids to tiers; a tier field in the log line takes precedence.
	Users map[string]string `yaml:"users,omitempty"`
}

// DefaultConfig holds the tiers of the system usage-exporter replaces.
func DefaultConfig() Config {
	return Config{
		Tiers: []Tier{
			{Name: "trial", Calls: limit(700), Tokens: limit(100_000), MonthlyPrice: 0},
			{Name: "starter", Calls: limit(30_000), Tokens: limit(5_000_000), MonthlyPrice: 19},
			{Name: "professional", Calls: limit(300_000), Tokens: limit(50_000_000), MonthlyPrice: 49},
			{Name: "enterprise", Calls: limit(Unlimited), Tokens: limit(Unlimited), MonthlyPrice: 199},
		},
		DefaultTier: "unknown",
	}
}

func limit(l Limit) *Limit { return &l }

// AnonymousTier is the tier label of requests without a user.
const AnonymousTier = "none"

// Validate checks names, prices and user assignments.
func (c Config) Validate() error {
	seen := map[string]bool{}
	for i, t := range c.Tiers {
		p := "tiers[" + strconv.Itoa(i) + "]"
		if !fielderr.ValidName(t.Name) {
			return fielderr.New(p+".name", "must be a non-empty name of letters, digits, '-' or '_', not %q", t.Name)
		}
		if t.Name == AnonymousTier {
			return fielderr.New(p+".name", "%q is reserved for anonymous requests", AnonymousTier)
		}
		if seen[t.Name] {
			return fielderr.New(p+".name", "tier %q is defined twice", t.Name)
		}
		seen[t.Name] = true
		if t.Calls == nil {
			return fielderr.New(p+".calls", "is required: a number of calls per period, or \"unlimited\"")
		}
		if t.Tokens == nil {
			return fielderr.New(p+".tokens", "is required: a number of tokens per period, or \"unlimited\"")
		}
		if t.MonthlyPrice < 0 || math.IsNaN(t.MonthlyPrice) || math.IsInf(t.MonthlyPrice, 0) {
			return fielderr.New(p+".monthly_price", "must be a non-negative number")
		}
	}
	if !fielderr.ValidName(c.DefaultTier) || c.DefaultTier == AnonymousTier {
		return fielderr.New("default_tier", "must be a tier name, not %q", c.DefaultTier)
	}
	users := make([]string, 0, len(c.Users))
	for u := range c.Users {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		if !seen[c.Users[u]] && c.Users[u] != c.DefaultTier {
			return fielderr.New("users."+u, "unknown tier %q", c.Users[u])
		}
	}
	return nil
}

// Names returns the configured tier names followed by the default tier, if
// it is not one of them: the bounded set of tier label values.
func (c Config) Names() []string {
	names := make([]string, 0, len(c.Tiers)+1)
	found := false
	for _, t := range c.Tiers {
		names = append(names, t.Name)
		found = found || t.Name == c.DefaultTier
	}
	if !found {
		names = append(names, c.DefaultTier)
	}
	return names
}

// Lookup finds a tier by name.
func (c Config) Lookup(name string) (Tier, bool) {
	for _, t := range c.Tiers {
		if t.Name == name {
			return t, true
		}
	}
	return Tier{}, false
}
