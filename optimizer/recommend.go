package optimizer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/usage-exporter/usage-exporter/plans"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// The recommendation types, in the order of the API documentation.
const (
	TypeModelSwitch          = "model_switch"
	TypeSmartRouting         = "smart_routing"
	TypeCaching              = "caching"
	TypeSemanticCaching      = "semantic_caching"
	TypePlanUpgrade          = "plan_upgrade"
	TypePlanOptimization     = "plan_optimization"
	TypeBillingModel         = "billing_model"
	TypeResourceOptimization = "resource_optimization"
	TypeModelConsolidation   = "model_consolidation"
	TypeBatchProcessing      = "batch_processing"
	TypeJobScheduling        = "job_scheduling"
	TypePeakShifting         = "peak_shifting"
	TypeAutoScaling          = "auto_scaling"
)

// Types lists every recommendation type.
var Types = []string{TypeModelSwitch, TypeSmartRouting, TypeCaching, TypeSemanticCaching, TypePlanUpgrade,
	TypePlanOptimization, TypeBillingModel, TypeResourceOptimization, TypeModelConsolidation, TypeBatchProcessing,
	TypeJobScheduling, TypePeakShifting, TypeAutoScaling}

// Efforts and the hours they stand for in estimated_implementation_time.
var effortHours = map[string]int{"low": 4, "medium": 16, "high": 40}

// Recommendation is one finding.
type Recommendation struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Priority    string `json:"priority"`
	Current     string `json:"current"`
	Recommended string `json:"recommended"`
	// Savings are dollars a month: a cost saved, or for Revenue findings
	// (plan_upgrade, billing_model) revenue gained.
	Savings float64 `json:"savings"`
	Revenue bool    `json:"revenue,omitempty"`
	// Group names the spend (or revenue) a finding acts on, when others act
	// on it too: of a group only the best counts in the totals, the others
	// are its alternatives (AlternativeTo is its id).
	Group         string `json:"group,omitempty"`
	AlternativeTo string `json:"alternative_to,omitempty"`
	// CountedSavings is what the finding adds to its total: its savings on
	// the spend the findings counted before it (larger first) left, less
	// its own running cost; 0 for an alternative.
	CountedSavings float64        `json:"counted_savings"`
	Impact         string         `json:"impact"`
	Effort         string         `json:"implementation_effort"`
	Evidence       map[string]any `json:"evidence"`
	// subject identifies the finding when Current or Recommended carry
	// figures that drift between runs; the ID hashes it instead of them.
	subject string
	// claims are the gross monthly dollars the finding takes out of each
	// part of the spend; overhead what it costs to run (a cache).
	claims   map[pool]float64
	overhead float64
	counted  map[pool]float64 // what settle let it take of each pool
}

// Skipped is a type the data did not allow to evaluate, and why.
type Skipped struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// Result is one analysis.
type Result struct {
	Recommendations []Recommendation `json:"recommendations"`
	// Skipped are types the data could not support; NothingFound types
	// evaluated without a finding, with the figure that fell short.
	Skipped      []Skipped `json:"skipped"`
	NothingFound []Skipped `json:"nothing_found"`
	// TotalSavings sums the counted savings: at most the spend they act on
	// (the usage spend, and the configured infrastructure and GPU costs).
	TotalSavings float64 `json:"total_potential_savings"`
	TotalRevenue float64 `json:"total_revenue_opportunity"`
	Hours        int     `json:"implementation_hours"`
}

// ID is a stable hash of a finding: the same finding keeps its id across runs.
func ID(typ, current, recommended string) string {
	sum := sha256.Sum256([]byte(typ + "\x00" + current + "\x00" + recommended))
	return hex.EncodeToString(sum[:6])
}

type analysis struct {
	s      *Snapshot
	prices *pricing.Table
	plans  plans.Config
	cfg    Config
	now    time.Time
	spend  float64 // monthly
	res    Result
	// nothing holds, by type, why an evaluation found nothing.
	nothing map[string][]string
}

// Recommend decides what would save money in s. It is pure: the snapshot,
// prices, plans, thresholds and the time are its only inputs.
func Recommend(s *Snapshot, prices *pricing.Table, pl plans.Config, cfg Config, now time.Time) Result {
	a := &analysis{s: s, prices: prices, plans: pl, cfg: cfg, now: now, spend: s.Monthly(s.TotalCost()),
		nothing: map[string][]string{}}
	a.modelSwitch()
	a.smartRouting()
	a.caching()
	a.semanticCaching()
	a.planUpgrade()
	a.planOptimization()
	a.billingModel()
	a.resourceOptimization()
	a.modelConsolidation()
	a.batchProcessing()
	a.jobScheduling()
	a.peakShifting()
	a.autoScaling()
	r := &a.res
	sort.SliceStable(r.Recommendations, func(i, j int) bool {
		x, y := r.Recommendations[i], r.Recommendations[j]
		if x.Savings != y.Savings {
			return x.Savings > y.Savings
		}
		return x.ID < y.ID
	})
	a.settle()
	a.nothingFound()
	if r.Recommendations == nil {
		r.Recommendations = []Recommendation{}
	}
	if r.Skipped == nil {
		r.Skipped = []Skipped{}
	}
	return *r
}

func (a *analysis) skip(typ, format string, args ...any) {
	a.res.Skipped = append(a.res.Skipped, Skipped{Type: typ, Reason: fmt.Sprintf(format, args...)})
}

// priority grades monthly savings against absolute and relative thresholds.
func (a *analysis) priority(savings float64) string {
	p := a.cfg.Priority
	switch {
	case savings >= math.Max(p.HighMin, p.HighShare*a.spend):
		return "high"
	case savings >= math.Max(p.MediumMin, p.MediumShare*a.spend):
		return "medium"
	default:
		return "low"
	}
}

// none records why an evaluation of typ found nothing.
func (a *analysis) none(typ, format string, args ...any) {
	a.nothing[typ] = append(a.nothing[typ], fmt.Sprintf(format, args...))
}

// add keeps a finding worth at least Priority.DropBelow a month, or an
// informational one (keepZero).
func (a *analysis) add(r Recommendation, keepZero bool) {
	if r.Savings < a.cfg.Priority.DropBelow && !(keepZero && r.Savings == 0) {
		a.none(r.Type, "%s: $%.2f/month, under the $%.2f threshold", r.Current, r.Savings, a.cfg.Priority.DropBelow)
		return
	}
	r.Savings = cents(r.Savings)
	if r.subject != "" {
		r.ID = ID(r.Type, r.subject, "")
	} else {
		r.ID = ID(r.Type, r.Current, r.Recommended)
	}
	r.Priority = a.priority(r.Savings)
	if r.Evidence == nil {
		r.Evidence = map[string]any{}
	}
	if a.s.SinceStart {
		r.Evidence["figures"] = "totals since the exporter started, scaled to a month"
	}
	a.res.Recommendations = append(a.res.Recommendations, r)
}
