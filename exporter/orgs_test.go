package exporter

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
)

// Organisations from the lines' org_id: requests and cost per organisation
// and service, the cap with __other__ and its overflow count, the hashed
// policy, and lines without an organisation in no org series.
func TestOrganisationsFromLogs(t *testing.T) {
	for _, policy := range []string{UserLabelRaw, UserLabelHashed} {
		t.Run(policy, func(t *testing.T) {
			cfg := testConfig("json")
			cfg.Orgs = OrgsConfig{Label: policy, HashKey: "k", MaxOrgs: 2}
			cfg.Pricing.PerCall = map[string]float64{"search": 0.001}
			d, in := newStages(t, cfg, prometheus.NewRegistry())
			d.now, in.attr.now = testNow, testNow
			q := newQuotas(in.ledger.store, cfg, testNow)
			var b bytes.Buffer
			line := func(org, path, extra string, n int) {
				for range n {
					fmt.Fprintf(&b, `{"timestamp":"2025-11-15T10:00:00Z","user_id":"u","org_id":"%s","path":"%s","status":200,"duration_ms":5%s}`+"\n", org, path, extra)
				}
			}
			line("acme", "/api/v1/search", "", 5)
			line("acme", "/api/v1/llm/chat/completions", `,"model":"gpt-4","input_tokens":1000,"output_tokens":500`, 2)
			line("globex", "/api/v1/search", "", 3)
			line("initech", "/api/v1/search", "", 1) // the third organisation: past max_orgs 2
			line("", "/api/v1/search", "", 4)        // no organisation
			ingestSync(d, in, &tailer.Batch{Data: b.Bytes()})
			saved(in, q)
			s := scrapeText(t, in, q)
			name := func(org string) string {
				if policy == UserLabelHashed {
					return storedIDOf(cfg.Orgs.users(), org)
				}
				return org
			}
			req := func(org, svc string) float64 {
				return s[fmt.Sprintf(`usage_org_requests_total{api_service="%s",org="%s"}`, svc, org)]
			}
			cost := func(org, svc string) float64 {
				return s[fmt.Sprintf(`usage_org_cost_dollars_total{api_service="%s",org="%s"}`, svc, org)]
			}
			if req(name("acme"), "search") != 5 || req(name("acme"), "llm") != 2 || req(name("globex"), "search") != 3 ||
				req(otherLabel, "search") != 1 {
				t.Errorf("requests: acme %v/%v globex %v other %v", req(name("acme"), "search"), req(name("acme"), "llm"),
					req(name("globex"), "search"), req(otherLabel, "search"))
			}
			// gpt-4 at $30/$60 a million: 2 x (0.03 + 0.03); search at $0.001 a call.
			if math.Abs(cost(name("acme"), "llm")-0.12) > 1e-12 || math.Abs(cost(name("acme"), "search")-0.005) > 1e-12 ||
				math.Abs(cost(otherLabel, "search")-0.001) > 1e-12 {
				t.Errorf("cost: acme llm %v search %v, other %v", cost(name("acme"), "llm"), cost(name("acme"), "search"), cost(otherLabel, "search"))
			}
			if s[`usage_exporter_series_overflow_total{api_service="",reason="org_cap"}`] != 1 {
				t.Errorf("org_cap overflow %v", s[`usage_exporter_series_overflow_total{api_service="",reason="org_cap"}`])
			}
			var total float64
			for k, v := range s {
				if len(k) > 25 && k[:25] == "usage_org_requests_total{" {
					total += v
				}
			}
			if total != 11 {
				t.Errorf("%v requests with an organisation, want 11 (4 lines had none)", total)
			}
			if policy == UserLabelHashed && req("acme", "search") != 0 {
				t.Error("a raw organisation id under the hashed policy")
			}
		})
	}
}

// nginx: the organisation from a variable of the log_format.
func TestOrganisationFromNginx(t *testing.T) {
	cfg := testConfig("nginx")
	cfg.Logs.Sources[0].NginxFormat = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time "$http_x_org_id"`
	d, in := newStages(t, cfg, prometheus.NewRegistry())
	d.now, in.attr.now = testNow, testNow
	q := newQuotas(in.ledger.store, cfg, testNow)
	data := `10.0.0.1 - alice [15/Nov/2025:10:00:00 +0000] "POST /api/v1/search HTTP/1.1" 200 512 "-" "curl/8" 0.120 "acme"` + "\n" +
		`10.0.0.1 - bob [15/Nov/2025:10:00:01 +0000] "POST /api/v1/search HTTP/1.1" 200 512 "-" "curl/8" 0.120 "-"` + "\n"
	ingestSync(d, in, &tailer.Batch{Data: []byte(data)})
	saved(in, q)
	s := scrapeText(t, in, q)
	if v := s[`usage_org_requests_total{api_service="search",org="acme"}`]; v != 1 {
		t.Errorf("acme: %v", v)
	}
	if v := s[`usage_org_requests_total{api_service="search",org="-"}`]; v != 0 {
		t.Errorf("nginx's - is no organisation: %v", v)
	}
}

// The organisations with a label survive a restart: after it, two new
// organisations come first, and the labelled one still counts under its
// own label while the newcomers fold into __other__.
func TestOrganisationLabelsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "a.log")
	var b strings.Builder
	line := func(org string, n int) {
		for range n {
			fmt.Fprintf(&b, `{"timestamp":"2025-11-15T11:00:00Z","user_id":"u","org_id":"%s","path":"/api/v1/search","status":200,"duration_ms":5}`+"\n", org)
		}
	}
	line("acme", 7)
	line("globex", 3)
	os.WriteFile(logPath, []byte(b.String()), 0o644)
	cfg := fastConfig(logPath)
	cfg.Orgs.MaxOrgs = 2
	stateDir := filepath.Join(dir, "state")
	byOrg := func(inst *instance) map[string]float64 {
		return sumCounter(t, inst.reg, "usage_org_requests_total", func(l map[string]string) string { return l["org"] })
	}
	inst := startInstance(t, cfg, stateDir, "")
	waitFor(t, "both organisations", func() bool { o := byOrg(inst); return o["acme"] == 7 && o["globex"] == 3 })
	if err := inst.stop(); err != nil {
		t.Fatal(err)
	}

	b.Reset()
	line("initech", 1)
	line("hooli", 1)
	line("acme", 1)
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(b.String())
	f.Close()
	inst = startInstance(t, cfg, stateDir, "")
	waitFor(t, "the new lines", func() bool {
		o := byOrg(inst)
		return o["acme"]+o["globex"]+o[otherLabel]+o["initech"]+o["hooli"] == 13
	})
	if o := byOrg(inst); o["acme"] != 8 || o["globex"] != 3 || o[otherLabel] != 2 {
		t.Errorf("after the restart: %v", o)
	}
}
