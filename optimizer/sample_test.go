package optimizer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter"
	"github.com/usage-exporter/usage-exporter/pricing"
)

// sampleFigures are what the shipped sample logs hold in a window,
// computed here from the files themselves, line by line.
type sampleFigures struct {
	calls, errors, cost map[string]float64 // by api_service; cost with egress
	users               map[string]*sampleUser
	usersOf             map[string]map[string]bool // service -> identified users
	total, totalCost    float64
	unpriced            float64
	durations           map[string][]float64 // by api_service, seconds; "" all
}

type sampleUser struct {
	calls, cost float64
	byService   map[string]float64
}

var nginxLine = regexp.MustCompile(`^\S+ - (\S+) \[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d+) (\d+) "[^"]*" "[^"]*" ([\d.]+)$`)

// sampleService classifies a path as the default rules do: the first rule
// one of whose prefixes it starts with at a segment boundary.
func sampleService(path string) string {
	path, _, _ = strings.Cut(path, "?")
	rules := []struct {
		name     string
		prefixes []string
	}{
		{"llm", []string{"/api/v1/llm/", "/v1/chat/completions", "/v1/completions", "/chat/completions"}},
		{"embeddings", []string{"/api/v1/embeddings", "/v1/embeddings", "/embeddings"}},
		{"search", []string{"/api/v1/search"}},
		{"tts", []string{"/api/v1/tts", "/v1/audio/speech"}},
		{"stt", []string{"/api/v1/stt", "/v1/audio/transcriptions", "/v1/audio/translations"}},
	}
	for _, r := range rules {
		for _, p := range r.prefixes {
			if strings.HasPrefix(path, p) && (len(path) == len(p) || strings.HasSuffix(p, "/") || path[len(p)] == '/') {
				return r.name
			}
		}
	}
	return "other"
}

// sampleWindow computes the figures of the lines dated in [from, to).
func sampleWindow(t *testing.T, prices *pricing.Table, from, to time.Time) *sampleFigures {
	f := &sampleFigures{calls: map[string]float64{}, errors: map[string]float64{}, cost: map[string]float64{},
		users: map[string]*sampleUser{}, usersOf: map[string]map[string]bool{}, durations: map[string][]float64{}}
	perCall := map[string]float64{"embeddings": 0.001, "search": 0.0005, "tts": 0.0015, "stt": 0.0012}
	add := func(at time.Time, user, service, path string, status int, size, seconds float64, model string, in, out float64, tokens bool) {
		if at.Before(from) || !at.Before(to) || strings.HasPrefix(path, "/healthz") {
			return
		}
		var cost float64
		switch {
		case model != "":
			key := model
			if key == "gpt4" {
				key = "gpt-4"
			}
			_, e, ok := prices.Lookup(key)
			if !ok || !tokens {
				t.Fatalf("sample line of %s: no price or no tokens", model)
			}
			cost = (in**e.Input + out**e.Output) / 1e6
		case service == "llm" && status < 400:
			f.unpriced++
		case status < 400:
			cost = perCall[service]
		}
		f.calls[service]++
		f.durations[service] = append(f.durations[service], seconds)
		f.durations[""] = append(f.durations[""], seconds)
		if status < 200 || status >= 400 {
			f.errors[service]++
		}
		egress := size * 0.09 / 1e9
		f.cost[service] += cost + egress
		f.total++
		f.totalCost += cost + egress
		if user == "" {
			return
		}
		u := f.users[user]
		if u == nil {
			u = &sampleUser{byService: map[string]float64{}}
			f.users[user] = u
		}
		u.calls++
		u.cost += cost
		u.byService[service]++
		if f.usersOf[service] == nil {
			f.usersOf[service] = map[string]bool{}
		}
		f.usersOf[service][user] = true
	}
	gw, err := os.Open("../examples/logs/gateway.log")
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	sc := bufio.NewScanner(gw)
	for sc.Scan() {
		var l struct {
			Timestamp    time.Time `json:"timestamp"`
			UserID       string    `json:"user_id"`
			Path         string    `json:"path"`
			Status       int       `json:"status"`
			Size         float64   `json:"size"`
			DurationMs   float64   `json:"duration_ms"`
			Service      string    `json:"service"`
			Model        string    `json:"model"`
			InputTokens  *float64  `json:"input_tokens"`
			OutputTokens *float64  `json:"output_tokens"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		svc := l.Service
		if !slices.Contains([]string{"llm", "embeddings", "search", "tts", "stt"}, svc) {
			svc = sampleService(l.Path)
		}
		var in, out float64
		if l.InputTokens != nil {
			in = *l.InputTokens
		}
		if l.OutputTokens != nil {
			out = *l.OutputTokens
		}
		add(l.Timestamp, l.UserID, svc, l.Path, l.Status, l.Size, l.DurationMs/1000, l.Model, in, out,
			l.InputTokens != nil || l.OutputTokens != nil)
	}
	ng, err := os.Open("../examples/logs/nginx-access.log")
	if err != nil {
		t.Fatal(err)
	}
	defer ng.Close()
	sc = bufio.NewScanner(ng)
	for sc.Scan() {
		m := nginxLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("not a sample nginx line: %s", sc.Text())
		}
		at, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[2])
		if err != nil {
			t.Fatal(err)
		}
		user := m[1]
		if user == "-" {
			user = ""
		}
		status, _ := strconv.Atoi(m[5])
		size, _ := strconv.ParseFloat(m[6], 64)
		seconds, _ := strconv.ParseFloat(m[7], 64)
		add(at, user, sampleService(m[4]), m[4], status, size, seconds, "", 0, 0, false)
	}
	return f
}

// The exporter on the shipped sample logs (examples/), and the optimizer
// reading it: overview, by-service, by-user and costs are the sums of the
// log files' lines, for windows of 1, 7 and 90 days (the logs hold two
// days: 24 and 25 October 2025).
func TestSampleLogsEndToEnd(t *testing.T) {
	cfg, err := exporter.LoadConfig("../examples/usage-exporter.yml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Logs.Sources {
		cfg.Logs.Sources[i].Path = "../" + cfg.Logs.Sources[i].Path
	}
	url, reg := startExporterWith(t, cfg)
	eventually(t, "the sample's lines", 30*time.Second, func() bool { return parsedLines(t, reg) >= 7800 })
	prices, err := pricing.Load(cfg.Pricing)
	if err != nil {
		t.Fatal(err)
	}
	src := &ExporterSource{URL: url + "/metrics"}
	e := NewEngine(src, NewMemoryCache(), mustSettings(t))
	api := &API{Engine: e}
	oct24 := time.Date(2025, 10, 24, 0, 0, 0, 0, time.UTC)
	for _, days := range []int{1, 7, 90} {
		t.Run(fmt.Sprint(days, " days"), func(t *testing.T) {
			from := oct24
			if days == 1 {
				from = oct24.AddDate(0, 0, 1)
			}
			want := sampleWindow(t, prices, from, oct24.AddDate(0, 0, 2))
			var s *Snapshot
			eventually(t, "every line in the window", 10*time.Second, func() bool {
				var err error
				s, err = src.Snapshot(context.Background(), days, time.Now())
				return err == nil && s.TotalCalls() == want.total
			})
			t.Logf("window of %d days: %v calls, $%.4f, %d users, %v unpriced", days, want.total, want.totalCost, len(want.users), want.unpriced)
			if !s.Start.Equal(oct24.AddDate(0, 0, 2-days)) || !s.End.Equal(oct24.AddDate(0, 0, 2)) {
				t.Errorf("window %s to %s", s.Start, s.End)
			}
			// The snapshot, unrounded: exact to 1e-9.
			for svc, n := range want.calls {
				sv := s.Services[svc]
				if sv == nil || sv.Calls != n || sv.Errors != want.errors[svc] || math.Abs(sv.Cost+sv.Egress-want.cost[svc]) > 1e-9 ||
					sv.UniqueUsers != len(want.usersOf[svc]) {
					t.Errorf("%s: %+v, want %v calls, %v errors, $%.9f, %d users", svc, sv, n, want.errors[svc], want.cost[svc],
						len(want.usersOf[svc]))
				}
			}
			if len(s.Services) != len(want.calls) || math.Abs(s.TotalCost()-want.totalCost) > 1e-9 || s.Unpriced["no_model"] != want.unpriced {
				t.Errorf("services %d (want %d), cost %.9f (want %.9f), unpriced %v (want %v)", len(s.Services), len(want.calls),
					s.TotalCost(), want.totalCost, s.Unpriced, want.unpriced)
			}
			if len(s.Users) != len(want.users) {
				t.Errorf("%d users, want %d", len(s.Users), len(want.users))
			}
			for name, u := range want.users {
				got := s.Users[name]
				if got == nil || got.Calls != u.calls || math.Abs(got.Cost-u.cost) > 1e-9 || fmt.Sprint(got.ByService) != fmt.Sprint(u.byService) {
					t.Errorf("user %s: %+v, want %+v", name, got, u)
				}
			}
			// Quantiles, overall and per service, within 4.5% of the exact
			// ones (the nearest-rank observation) of the window's lines.
			for svc, d := range want.durations {
				slices.Sort(d)
				got := [3]float64{s.Latency.P50, s.Latency.P95, s.Latency.P99}
				if svc != "" {
					got = [3]float64{s.Services[svc].P50, s.Services[svc].P95, s.Services[svc].P99}
				}
				for i, q := range []float64{0.5, 0.95, 0.99} {
					exact := d[int(math.Ceil(q*float64(len(d))))-1]
					if math.Abs(got[i]-exact) > 0.045*exact {
						t.Errorf("%q p%v: %v, exact %v", svc, q*100, got[i], exact)
					}
				}
			}
			// The views, rounded as the API rounds.
			var o Overview
			if err := json.Unmarshal(get(t, api, fmt.Sprintf("%soverview?days=%d", APIPrefix, days)).Body.Bytes(), &o); err != nil {
				t.Fatal(err)
			}
			if o.TotalAPICalls != want.total || o.TotalCost != money(want.totalCost) || o.ByUserCount != len(want.users) {
				t.Errorf("overview %v calls $%v %d users; want %v, $%v, %d", o.TotalAPICalls, o.TotalCost, o.ByUserCount,
					want.total, money(want.totalCost), len(want.users))
			}
			for svc, n := range want.calls {
				if bs := o.ByService[svc]; bs.Calls != n || bs.Cost != money(want.cost[svc]) {
					t.Errorf("overview %s: %+v", svc, bs)
				}
			}
			var rows []ServiceRow
			json.Unmarshal(get(t, api, fmt.Sprintf("%sby-service?days=%d", APIPrefix, days)).Body.Bytes(), &rows)
			for _, r := range rows {
				if r.TotalCalls != want.calls[r.ServiceName] || r.TotalCost != money(want.cost[r.ServiceName]) ||
					r.ErrorRate != percent(want.errors[r.ServiceName], want.calls[r.ServiceName]) {
					t.Errorf("by-service %+v", r)
				}
			}
			var users []UserRow
			json.Unmarshal(get(t, api, fmt.Sprintf("%sby-user?days=%d&limit=1000", APIPrefix, days)).Body.Bytes(), &users)
			if len(users) != len(want.users) {
				t.Errorf("by-user: %d rows, want %d", len(users), len(want.users))
			}
			for _, r := range users {
				u := want.users[r.UserID]
				if u == nil || r.TotalCalls != u.calls || r.TotalCost != money(u.cost) {
					t.Errorf("by-user %+v, want %+v", r, u)
				}
			}
			var c Costs
			json.Unmarshal(get(t, api, fmt.Sprintf("%scosts?days=%d", APIPrefix, days)).Body.Bytes(), &c)
			var userCost float64
			for _, u := range want.users {
				userCost += u.cost
			}
			if c.TotalCost != money(want.totalCost) || c.CostPerUser != money(userCost/float64(len(want.users))) {
				t.Errorf("costs total $%v per user $%v", c.TotalCost, c.CostPerUser)
			}
			for svc, v := range want.cost {
				if c.CostBreakdown[svc] != money(v) {
					t.Errorf("costs %s $%v, want $%v", svc, c.CostBreakdown[svc], money(v))
				}
			}
		})
	}
}
