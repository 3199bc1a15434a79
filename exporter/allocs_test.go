package exporter

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
)

// TestNoAllocationPerLine guards the README's claim: once a line's series
// exist, parsing and counting it allocates nothing. (make test runs it
// without -race, whose sync.Pool drops items on purpose.)
func TestNoAllocationPerLine(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool allocates; make test runs this without -race")
	}
	for _, tc := range []struct {
		format string
		line   []byte
		name   string
	}{{"nginx", benchNginx, "nginx"}, {"json", benchJSON, "json"}, {"json", benchJSONOrg, "json-org"}} {
		t.Run(tc.name, func(t *testing.T) {
			d, in := newStages(t, testConfig(tc.format), prometheus.NewRegistry())
			batch := &tailer.Batch{Data: append(append([]byte{}, tc.line...), '\n')}
			ingestSync(d, in, batch) // the line's series are created once
			if n := testing.AllocsPerRun(1000, func() { ingestSync(d, in, batch) }); n != 0 {
				t.Errorf("%v allocations per %s line, want 0", n, tc.format)
			}
		})
	}
}
