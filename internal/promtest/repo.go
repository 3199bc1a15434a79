package promtest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// RepositoryConfig is the repository's prometheus.yml (root is the
// repository's top directory) with its targets
// replaced by the test's, time compressed (1 s scrapes and evaluations,
// every rule group at 1 s, the anomaly rules' week of hours a few minutes of
// seconds) and no Alertmanager; the rules are copies in dir.
func RepositoryConfig(t testing.TB, root, dir string, targets map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
	delete(cfg, "alerting")
	for _, sc := range cfg["scrape_configs"].([]any) {
		job := sc.(map[string]any)
		addr, ok := targets[job["job_name"].(string)]
		if !ok {
			t.Fatalf("no test target for job %v", job["job_name"])
		}
		job["static_configs"] = []any{map[string]any{"targets": []string{addr}}}
		delete(targets, job["job_name"].(string))
	}
	if len(targets) > 0 {
		t.Fatalf("prometheus.yml has no job for %v", targets)
	}
	rules, _ := filepath.Glob(filepath.Join(root, "prometheus", "rules", "*.yml"))
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	compress := strings.NewReplacer("interval: 1m", "interval: 1s", "interval: 5m", "interval: 1s", "[1w:1h]", "[5m:1s]")
	for _, r := range rules {
		data, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rules", filepath.Base(r)), []byte(compress.Replace(string(data))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(cfg["rule_files"].([]any), []any{"rules/*.yml"}) {
		t.Fatalf("rule_files %v", cfg["rule_files"])
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
