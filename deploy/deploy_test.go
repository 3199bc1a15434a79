package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The committed manifests are what the generator writes from the sources.
func TestManifestsAreGenerated(t *testing.T) {
	want, err := Manifests("..")
	if err != nil {
		t.Fatal(err)
	}
	committed, _ := filepath.Glob("kubernetes/*")
	if len(committed) != len(want) {
		t.Errorf("deploy/kubernetes has %v, the generator writes %d files", committed, len(want))
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join("kubernetes", name))
		if err != nil || string(got) != string(data) {
			t.Errorf("deploy/kubernetes/%s is not what deploy/gen writes (%v): run make manifests", name, err)
		}
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The PrometheusRule holds every rule group as prometheus/rules has it, and
// the ConfigMaps every dashboard as grafana/dashboards has it.
func TestManifestsHoldTheSources(t *testing.T) {
	var rule struct {
		Spec struct {
			Groups []any `yaml:"groups"`
		} `yaml:"spec"`
	}
	readYAML(t, "kubernetes/prometheusrule.yaml", &rule)
	var groups []any
	files, _ := filepath.Glob("../prometheus/rules/*.yml")
	slices.Sort(files)
	for _, f := range files {
		var rf struct {
			Groups []any `yaml:"groups"`
		}
		readYAML(t, f, &rf)
		groups = append(groups, rf.Groups...)
	}
	if len(groups) < 5 || !reflect.DeepEqual(rule.Spec.Groups, groups) {
		t.Errorf("the PrometheusRule's %d groups are not the %d of prometheus/rules", len(rule.Spec.Groups), len(groups))
	}
	data, err := os.ReadFile("kubernetes/dashboards.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	found := map[string]string{}
	for {
		var cm struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&cm); err != nil {
			break
		}
		if cm.Metadata.Labels["grafana_dashboard"] != "1" {
			t.Errorf("a dashboard ConfigMap without the sidecar's label: %v", cm.Metadata.Labels)
		}
		for k, v := range cm.Data {
			found[k] = v
		}
	}
	dashboards, _ := filepath.Glob("../grafana/dashboards/*.json")
	if len(found) != len(dashboards) || len(dashboards) == 0 {
		t.Errorf("%d dashboard ConfigMaps, %d dashboards", len(found), len(dashboards))
	}
	for _, f := range dashboards {
		want, _ := os.ReadFile(f)
		if found[filepath.Base(f)] != string(want) {
			t.Errorf("%s differs in its ConfigMap", f)
		}
	}
}

// Debian's docker-compose (1.29, no Docker engine needed) accepts the file.
func TestComposeFileIsValid(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose not installed (make deps installs it): %v", err)
	}
	if out, err := exec.Command(bin, "-f", "../docker-compose.yml", "config", "-q").CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
}

type composeFile struct {
	Services map[string]struct {
		Build       any               `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck any               `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// Every path the compose file mounts exists; named volumes are declared;
// images are pinned; every service has a healthcheck; every target of prometheus.yml and of the Grafana data
// source is a compose service and port; Grafana's dashboard provider reads
// the directory the dashboards are mounted at, and its home dashboard is
// one of them.
func TestComposeMatchesTheRepository(t *testing.T) {
	var c composeFile
	readYAML(t, "../docker-compose.yml", &c)
	mounts := map[string]string{} // container path -> repository path
	for name, s := range c.Services {
		if s.Image == "" || (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
			t.Errorf("%s: image %q not pinned", name, s.Image)
		}
		if s.Healthcheck == nil {
			t.Errorf("%s: no healthcheck", name)
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			src := parts[0]
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("%s mounts %s, which the repository lacks", name, src)
				}
				mounts[parts[1]] = src
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s: volume %s not declared", name, src)
			}
		}
		for _, arg := range s.Command {
			if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
				if _, mounted := mounts[v]; !mounted && !slices.ContainsFunc(s.Volumes, func(m string) bool { return strings.Contains(m, ":"+filepath.Dir(v)) }) {
					t.Errorf("%s reads %s, which is not mounted", name, v)
				}
			}
		}
	}
	// A target host:port is a service publishing that port.
	serves := func(target string) bool {
		host, port, _ := strings.Cut(target, ":")
		s, ok := c.Services[host]
		return ok && slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) })
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
	}
	readYAML(t, "../prometheus/prometheus.yml", &prom)
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for _, am := range prom.Alerting.Alertmanagers {
		for _, st := range am.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	if len(targets) < 4 {
		t.Fatalf("targets %v", targets)
	}
	for _, tg := range targets {
		if !serves(tg) {
			t.Errorf("prometheus.yml targets %s, which no compose service publishes", tg)
		}
	}
	var ds struct {
		Datasources []struct {
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "../grafana/provisioning/datasources/prometheus.yml", &ds)
	for _, d := range ds.Datasources {
		if !serves(strings.TrimPrefix(d.URL, "http://")) {
			t.Errorf("the Grafana data source reads %s, which no compose service publishes", d.URL)
		}
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "../grafana/provisioning/dashboards/usage.yml", &provider)
	for _, p := range provider.Providers {
		if mounts[p.Options.Path] != "./grafana/dashboards" {
			t.Errorf("the dashboard provider reads %s, where grafana/dashboards is not mounted", p.Options.Path)
		}
	}
	home := c.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	dir, file := filepath.Split(home)
	if src, ok := mounts[strings.TrimSuffix(dir, "/")]; !ok {
		t.Errorf("home dashboard %s is not under a mount", home)
	} else if _, err := os.Stat(filepath.Join("..", src, file)); err != nil {
		t.Errorf("home dashboard %s: %v", home, err)
	}
}
