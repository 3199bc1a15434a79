package optimizer

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Source produces a Snapshot of a window of days ending at now.
type Source interface {
	Snapshot(ctx context.Context, days int, now time.Time) (*Snapshot, error)
	Name() string
}

// Querier is the part of the Prometheus HTTP API the optimizer uses.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time) (model.Vector, error)
	QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (model.Matrix, error)
}

type promAPI struct{ api v1.API }

// NewQuerier talks to a Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir).
func NewQuerier(url string) (Querier, error) {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, err
	}
	return promAPI{api: v1.NewAPI(c)}, nil
}

func (p promAPI) Query(ctx context.Context, q string, ts time.Time) (model.Vector, error) {
	v, _, _, err := p.api.Query(ctx, q, ts)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("%s: got %s, want a vector", q, v.Type())
	}
	return vec, nil
}

func (p promAPI) QueryRange(ctx context.Context, q string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	v, _, _, err := p.api.QueryRange(ctx, q, v1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return nil, err
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("%s: got %s, want a matrix", q, v.Type())
	}
	return m, nil
}
