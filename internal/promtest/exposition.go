package promtest

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Exposition gathers what a /metrics endpoint serves, in protobuf as
// Prometheus with native histograms asks for it: a prometheus.Gatherer for
// client_golang's testutil over the real handler.
type Exposition struct{ URL string }

// Gather implements prometheus.Gatherer.
func (e Exposition) Gather() ([]*dto.MetricFamily, error) {
	req, err := http.NewRequest(http.MethodGet, e.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", e.URL, resp.Status)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, mf)
	}
}
