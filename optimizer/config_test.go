package optimizer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestConfigErrors(t *testing.T) {
	if _, err := ParseConfig(nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
	good := "caching:\n  hit_rate: 0.6\nplans:\n  tiers:\n    - {name: free, calls: 100, tokens: unlimited, monthly_price: 0}\n  default_tier: free\n"
	c, err := ParseConfig([]byte(good))
	if err != nil || c.Caching.HitRate != 0.6 || c.Caching.InfrastructureMonthly != 10 || len(c.Plans.Tiers) != 1 {
		t.Fatalf("good: %+v, %v", c, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"caching:\n  hit_rat: 0.6\n", "line 2: field hit_rat not found"},
		{"caching:\n  hit_rate: 1.5\n", "line 2: caching.hit_rate: must be between 0 and 1, not 1.5"},
		{"priority:\n  high_min: -1\n", "line 2: priority.high_min: must not be negative"},
		{"scheduling:\n  busiest_hours: 30\n", "line 2: scheduling.busiest_hours: must be between 1 and 23"},
		{"consolidation:\n  min_models: 1\n", "consolidation.min_models: must be at least 2"},
		{"caching: [1, 2]\n", "line 1"},
	} {
		_, err := ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "optimizer.yml")
	os.WriteFile(path, []byte("gpu:\n  target_utilization: 2\n"), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.HasPrefix(err.Error(), path+": line 2: gpu.target_utilization") {
		t.Errorf("LoadConfig: %v", err)
	}
}

// The example configuration in examples/ is valid and states the defaults.
func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig("../examples/usage-optimizer.yml")
	if err != nil {
		t.Fatal(err)
	}
	if def := DefaultConfig(); !reflect.DeepEqual(*c, def) {
		t.Errorf("the example is not the defaults:\n%+v\n%+v", *c, def)
	}
}
