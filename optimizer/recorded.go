package optimizer

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	rules "github.com/usage-exporter/usage-exporter/internal/recorded"
)

// RecordedSums are the recording rules of prometheus/rules/usage-recording.yml
// that sum an exporter counter without some labels, keeping instance and
// job: the same counters with fewer series. Where one has the labels a
// query groups and filters by, the Prometheus source reads it instead of the
// raw series, so a 90-day window reads one series per service and status
// code, not one per route and method.
var RecordedSums = rules.Sums

// RecordedSum is one of them.
type RecordedSum = rules.Sum

// recorded maps a raw counter to the recorded sum that replaces it in this
// snapshot.
type recorded map[string]RecordedSum

// findRecorded asks Prometheus which recorded sums to read: those with
// samples at the window's end and at its start, or at its end only when the
// raw counter had none at the start either. A rule added within the window
// of an older counter would count from zero what happened before it: the
// raw series are read then.
func findRecorded(ctx context.Context, q Querier, start, end time.Time) (recorded, error) {
	var names []string
	for _, r := range RecordedSums {
		names = append(names, regexp.QuoteMeta(r.Record), regexp.QuoteMeta(r.Metric))
	}
	query := `group by (__name__) ({__name__=~"` + strings.Join(names, "|") + `"})`
	vecs, err := (&promQueries{ctx: ctx, q: q}).ends(query, start, end)
	if err != nil {
		return nil, err
	}
	var at [2]map[string]bool
	for i, vec := range vecs {
		at[i] = map[string]bool{}
		for _, smp := range vec {
			at[i][string(smp.Metric[model.MetricNameLabel])] = true
		}
	}
	out := recorded{}
	for _, r := range RecordedSums {
		if at[1][r.Record] && (at[0][r.Record] || !at[0][r.Metric]) {
			out[r.Metric] = r
		}
	}
	return out, nil
}

var matcherLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)

// rewrite returns selector (a metric name with optional matchers) on the
// recorded sum when there is one with every label of by and of the
// matchers, else selector.
func (r recorded) rewrite(selector, by string) string {
	name, matchers, _ := strings.Cut(selector, "{")
	sum, ok := r[name]
	if !ok {
		return selector
	}
	var need []string
	for _, l := range strings.Split(by, ",") {
		if l = strings.TrimSpace(l); l != "" {
			need = append(need, l)
		}
	}
	for _, m := range matcherLabel.FindAllStringSubmatch(matchers, -1) {
		need = append(need, m[1])
	}
	for _, l := range need {
		if !slices.Contains(sum.Labels, l) {
			return selector
		}
	}
	if matchers != "" {
		return sum.Record + "{" + matchers
	}
	return sum.Record
}

// used lists the recorded sums read, for the report's meta.
func (r recorded) used() []string {
	var out []string
	for _, sum := range r {
		out = append(out, sum.Record)
	}
	slices.Sort(out)
	return out
}
