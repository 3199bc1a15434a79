package series

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

var escapeValue = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// Samples hands on exactly the samples of an OpenMetrics scrape of the set
// (the format Prometheus 2.x negotiates), created timestamps aside: the
// same series, le written as there, the same values; an id always names
// the same series.
func TestSamplesAreTheScrapesSamples(t *testing.T) {
	s := randomSet(rand.New(rand.NewPCG(5, 6)), &clock{})
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := s.Published().Write(w, OpenMetrics); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	want := map[string]float64{}
	for _, line := range strings.Split(buf.String(), "\n") {
		if line == "" || line[0] == '#' || strings.Contains(line, "_created") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		want[line[:i]] = v
	}
	got := map[string]float64{}
	names := map[SampleID]string{}
	for range 2 {
		s.Samples(func(id SampleID, name string, pairs func() []string, v float64) {
			p := pairs()
			key := name
			if len(p) > 0 {
				var parts []string
				for i := 0; i+1 < len(p); i += 2 {
					parts = append(parts, p[i]+`="`+escapeValue.Replace(p[i+1])+`"`)
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			if prev, ok := names[id]; ok && prev != key {
				t.Errorf("id %v named %s and %s", id, prev, key)
			}
			names[id] = key
			got[key] = v
		})
	}
	if len(got) != len(want) || len(got) < 50 {
		t.Errorf("%d samples, the exposition has %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %v (present %v), the exposition %v", k, g, ok, v)
		}
	}
}
