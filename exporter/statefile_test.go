package exporter

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/litellm"
)

// The state file round-trips LiteLLM's baselines in their own part.
func TestStateFileRoundTrip(t *testing.T) {
	p := litellm.NewProcesses(time.Hour)
	snap, err := litellm.Parse(strings.NewReader("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 100\n"+
		"# TYPE litellm_spend_metric_total counter\nlitellm_spend_metric_total{requested_model=\"m\"} 2.5\n"), litellm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.Apply("http://litellm:4000", "http://litellm:4000/metrics", snap, testNow())
	data, _ := p.MarshalBinary()
	cp := checkpoint{Version: 3, LiteLLM: data}
	got, lines, err := decodeState(encodeState(&cp, []byte("series")))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.LiteLLM) != string(data) || string(lines) != "series" {
		t.Fatalf("round trip: litellm %d bytes, lines %q", len(got.LiteLLM), lines)
	}
	c, err := got.carried()
	if err != nil || c.litellm.Count() != 1 || c.legacy {
		t.Errorf("carried %+v, %v", c, err)
	}
}

// A state file of the version before, with LiteLLM's summed counters in
// its JSON, makes the next LiteLLM scrape a baseline.
func TestStateFileVersion2(t *testing.T) {
	j := `{"version":2,"positions":[],"litellm":{"start_time":1790229521.41,"spend":[{"Model":"gpt-4o","value":13.5}]}}`
	data := []byte(stateHeader2)
	data = binary.AppendUvarint(data, uint64(len(j)))
	data = append(data, j...)
	data = binary.AppendUvarint(data, 0)
	cp, _, err := decodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cp.carried()
	if err != nil || c.litellm != nil || !c.legacy {
		t.Errorf("carried %+v, %v: want no baselines and a rebaseline", c, err)
	}
	if _, _, err := decodeState([]byte("usage-exporter state 9\n")); err == nil {
		t.Error("a newer version accepted")
	}
}
