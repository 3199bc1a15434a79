package optimizer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixedSource returns a copy of snap, or err, and counts its calls.
type fixedSource struct {
	mu    sync.Mutex
	snap  func() *Snapshot
	err   error
	delay time.Duration
	calls atomic.Int32
}

func (f *fixedSource) Name() string { return "fixed" }

func (f *fixedSource) Snapshot(ctx context.Context, days int, now time.Time) (*Snapshot, error) {
	f.calls.Add(1)
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	s := f.snap()
	s.Days = days
	return s, nil
}

func (f *fixedSource) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// week is a 7-day snapshot with every kind of figure the views show.
func week() *Snapshot {
	s := newSnapshot(7, now)
	s.Source = "fixed"
	llm := s.service("llm")
	*llm = ServiceUsage{Calls: 45000, Errors: 675, Timeouts: 90, Cost: 180, ModelCost: map[string]float64{"gpt-4": 150, "gpt-4o-mini": 30},
		Bytes: 9e8, Duplicates: 4500, LatencySum: 45000 * 0.8505, LatencyCount: 45000, UniqueUsers: 3}
	emb := s.service("embeddings")
	*emb = ServiceUsage{Calls: 35000, Errors: 100, Cost: 35, ModelCost: map[string]float64{"": 35}, Egress: 0.5, Bytes: 2e8,
		Duplicates: 14000, LatencySum: 35000 * 0.2452, LatencyCount: 35000, UniqueUsers: 2}
	search := s.service("search")
	*search = ServiceUsage{Calls: 30000, Errors: 300, Cost: 15, ModelCost: map[string]float64{"": 15}, Bytes: 1e8,
		LatencySum: 30000 * 0.1208, LatencyCount: 30000, UniqueUsers: 3}
	*s.service("tts") = ServiceUsage{Calls: 2000, Cost: 10.5, ModelCost: map[string]float64{"": 10.5}, LatencySum: 2000 * 1.5,
		LatencyCount: 2000, UniqueUsers: 1}
	*s.service("stt") = ServiceUsage{Calls: 1000, Errors: 10, Cost: 5, ModelCost: map[string]float64{"": 5}, LatencySum: 1000 * 2.2,
		LatencyCount: 1000, UniqueUsers: 1}
	*s.endpoint("/api/v1/llm/chat/completions", "llm") = EndpointUsage{Service: "llm", Calls: 45000, Errors: 675,
		LatencySum: 45000 * 0.8505, LatencyCount: 45000}
	*s.endpoint("/api/v1/embeddings", "embeddings") = EndpointUsage{Service: "embeddings", Calls: 35000, Errors: 100,
		LatencySum: 35000 * 0.2452, LatencyCount: 35000}
	*s.endpoint("/api/v1/search", "search") = EndpointUsage{Service: "search", Calls: 30000, Errors: 300,
		LatencySum: 30000 * 0.1208, LatencyCount: 30000}
	gpt4 := s.model("gpt-4")
	gpt4.Calls, gpt4.Cost = 15000, 150
	gpt4.Tokens["input"], gpt4.Tokens["output"] = 4e6, 0.5e6
	gpt4.PromptTokens = map[float64]float64{99: 6000, 499: 9000, 1999: 13000, math.Inf(1): 15000}
	mini := s.model("gpt-4o-mini")
	mini.Calls, mini.Cost = 30000, 30
	mini.Tokens["input"], mini.Tokens["output"] = 1e8, 2.5e7
	mini.PromptTokens = map[float64]float64{99: 10000, 499: 20000, 1999: 29000, math.Inf(1): 30000}
	for _, u := range []struct {
		name, tier       string
		llm, emb, search float64
		cost, tokens     float64
	}{
		{"admin@example.com", "professional", 30000, 20000, 10000, 140, 9e7},
		{"bob@example.com", "starter", 14000, 15000, 10000, 80, 3e7},
		{"carol@example.com", "trial", 1000, 0, 10000, 10.5, 1e5},
	} {
		us := s.user(u.name, u.tier)
		us.ByService["llm"], us.ByService["embeddings"], us.ByService["search"] = u.llm, u.emb, u.search
		us.Calls, us.Cost, us.Tokens = u.llm+u.emb+u.search, u.cost, u.tokens
	}
	s.Quotas = []QuotaUse{quotaUser("admin@example.com", "professional", 85000, 1.2e7),
		quotaUser("bob@example.com", "starter", 12500, 1.8e6), quotaUser("carol@example.com", "trial", 450, 65000),
		quotaUser("dave@example.com", "enterprise", 450000, 6.5e7)}
	// 113,000 calls: 3,000 anonymous (searches), 400 llm calls without a model.
	anon := s.user(AnonymousUser, "none")
	anon.ByService["search"], anon.Calls, anon.Cost = 3000, 3000, 1.5
	s.Unpriced["no_model"] = 400
	s.Hourly = profile(8500)
	s.HourlyByService = map[string][]float64{"embeddings": profile(2000)}
	for d := 0; d < 7; d++ {
		s.Daily = append(s.Daily, DayUsage{Date: now.AddDate(0, 0, d-7), Calls: 15000 + float64(d)*500, Cost: 33 + float64(d)})
	}
	s.Latency = Latency{Avg: 0.2455, P50: 0.1964, P95: 0.61375, P99: 0.982}
	for name, q := range map[string][3]float64{"llm": {0.7, 1.9, 3.2}, "embeddings": {0.21, 0.52, 0.8},
		"search": {0.1, 0.3, 0.45}, "tts": {1.4, 2.5, 3}, "stt": {2, 4, 6}} {
		sv := s.Services[name]
		sv.P50, sv.P95, sv.P99 = q[0], q[1], q[2]
	}
	return s
}

func newTestEngine(t *testing.T, src Source) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	st, err := NewSettings(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(src, NewMemoryCache(), st)
	e.Now = func() time.Time { return now }
	return e
}

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	h.ServeHTTP(rec, req)
	return rec
}

// The JSON of every endpoint, compared with golden files.
func TestAPIGolden(t *testing.T) {
	api := &API{Engine: newTestEngine(t, &fixedSource{snap: week})}
	for _, v := range Views {
		t.Run(v, func(t *testing.T) {
			rec := get(t, api, APIPrefix+v+"?days=7")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "api", v+".json")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs from %s (go test -run TestAPIGolden -update rewrites it):\n%s", v, golden, pretty.String())
			}
		})
	}
}

// Every field of the old system's responses is still there, with the same
// JSON type and nesting; the figures the fixture sets are the right ones.
func TestLegacyShapes(t *testing.T) {
	api := &API{Engine: newTestEngine(t, &fixedSource{snap: week})}
	for _, v := range Views {
		legacyData, err := os.ReadFile(filepath.Join("testdata", "legacy", v+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var legacy, got any
		json.Unmarshal(legacyData, &legacy)
		if err := json.Unmarshal(get(t, api, APIPrefix+v).Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		for _, problem := range sameShape(v, legacy, got) {
			t.Error(problem)
		}
	}
	var o Overview
	json.Unmarshal(get(t, api, APIPrefix+"overview").Body.Bytes(), &o)
	if o.TotalAPICalls != 113000 || o.TotalCost != 246 || o.ByService["llm"].Calls != 45000 ||
		*o.ByService["llm"].AvgLatencyMs != 850.5 || o.ByUserCount != 3 || o.PeriodStart != "2025-11-09T00:00:00" {
		t.Errorf("overview %+v", o)
	}
	var p Performance
	json.Unmarshal(get(t, api, APIPrefix+"performance").Body.Bytes(), &p)
	if *p.P95LatencyMs != 613.8 || *p.P99LatencyMs != 982 || p.ErrorRate != 1 || p.TimeoutRate != 0.1 {
		t.Errorf("performance %+v", p)
	}
	var q map[string]TierQuota
	json.Unmarshal(get(t, api, APIPrefix+"quotas").Body.Bytes(), &q)
	if q["trial"].Used != 450 || q["trial"].Limit != float64(700) || q["trial"].Percentage != 64.3 ||
		q["enterprise"].Limit != "unlimited" || q["starter"].Percentage != 41.7 {
		t.Errorf("quotas %+v", q)
	}
}

// sameShape lists where got lacks a field of want or has another JSON type.
func sameShape(path string, want, got any) []string {
	kind := func(v any) string { return fmt.Sprintf("%T", v) }
	if kind(want) != kind(got) {
		return []string{fmt.Sprintf("%s: %s, was %s", path, kind(got), kind(want))}
	}
	var out []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			out = append(out, sameShape(path+"."+k, wv, gv)...)
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) == 0 {
			out = append(out, fmt.Sprintf("%s: empty", path))
		}
		if len(w) > 0 && len(g) > 0 {
			out = append(out, sameShape(path+"[0]", w[0], g[0])...)
		}
	}
	return out
}

func TestCSVParsesBack(t *testing.T) {
	api := &API{Engine: newTestEngine(t, &fixedSource{snap: week})}
	rec := get(t, api, APIPrefix+"optimization?format=csv&days=7")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("status %d, %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var o Optimization
	json.Unmarshal(get(t, api, APIPrefix+"optimization?days=7").Body.Bytes(), &o)
	if len(o.Recommendations) < 3 {
		t.Fatalf("the fixture should trigger several recommendations, got %d", len(o.Recommendations))
	}
	if len(rows) != len(o.Recommendations)+1 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	var sum float64
	for i, r := range o.Recommendations {
		row := rows[i+1]
		savings, err := strconv.ParseFloat(row[6], 64)
		if err != nil || row[0] != r.ID || row[1] != r.Type || row[3] != r.Current || row[4] != r.Recommended ||
			row[5] != r.PotentialSavings || savings != r.Savings || row[8] != r.Impact {
			t.Errorf("row %d %v does not match %+v", i, row, r)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(row[10]), &ev); err != nil {
			t.Errorf("evidence of row %d: %v", i, err)
		}
		counted, err := strconv.ParseFloat(row[13], 64)
		if err != nil || counted != r.CountedSavings || row[11] != r.Group || row[12] != r.AlternativeTo {
			t.Errorf("row %d %v: group, alternative or counted savings differ from %+v", i, row, r)
		}
		if !r.Revenue {
			sum += counted
		}
	}
	if math.Abs(sum-o.TotalPotentialSavings) > 0.005 {
		t.Errorf("CSV counted savings sum to %v, total says %v", sum, o.TotalPotentialSavings)
	}
}

func TestBadParameters(t *testing.T) {
	api := &API{Engine: newTestEngine(t, &fixedSource{snap: week})}
	for _, c := range []struct {
		target, param, says string
	}{
		{"overview?days=0", "days", "from 1 to 90, not 0"},
		{"overview?days=91", "days", "from 1 to 90, not 91"},
		{"costs?days=-3", "days", "not -3"},
		{"patterns?days=seven", "days", `not "seven"`},
		{"performance?days=", "days", `not ""`},
		{"quotas?days=1.5", "days", `not "1.5"`},
		{"overview?days=7&days=8", "days", "given 2 times"},
		{"by-user?limit=0", "limit", "from 1 to 1000, not 0"},
		{"by-user?limit=1001", "limit", "not 1001"},
		{"by-user?limit=ten", "limit", `not "ten"`},
		{"by-user?days=100&limit=5", "days", "not 100"},
		{"overview?format=csv", "format", `json, not "csv"`},
		{"optimization?format=xml", "format", `json or csv, not "xml"`},
		{"overview?days=99999999999999999999", "days", "integer"},
	} {
		rec := get(t, api, APIPrefix+c.target)
		var body apiError
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("%s: body %q is not JSON", c.target, rec.Body)
			continue
		}
		if rec.Code != http.StatusBadRequest || body.Parameter != c.param || !strings.Contains(body.Error, c.says) || body.Allowed == "" {
			t.Errorf("%s: %d %+v, want 400 on %s saying %q", c.target, rec.Code, body, c.param, c.says)
		}
	}
	if rec := get(t, api, APIPrefix+"nope"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "overview") {
		t.Errorf("unknown view: %d %s", rec.Code, rec.Body)
	}
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, APIPrefix+"overview", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
	// limit cuts by-user; a valid request still works after the bad ones.
	var users []UserRow
	json.Unmarshal(get(t, api, APIPrefix+"by-user?limit=2").Body.Bytes(), &users)
	if len(users) != 2 || users[0].UserID != "admin@example.com" || users[0].TotalCalls != 60000 || users[0].QuotaUsedPercent != 28.3 {
		t.Errorf("by-user limit=2: %+v", users)
	}
}

// A failing source: the last good report is served, marked stale, until it
// is older than TTL + MaxStale; then 503 with its age. Never a crash.
func TestSourceDown(t *testing.T) {
	src := &fixedSource{snap: week}
	e := newTestEngine(t, src)
	clock := now
	e.Now = func() time.Time { return clock }
	e.TTL, e.MaxStale = 5*time.Minute, 10*time.Minute
	api := &API{Engine: e}
	if rec := get(t, api, APIPrefix+"overview"); rec.Code != http.StatusOK {
		t.Fatalf("first: %d", rec.Code)
	}
	src.fail(errors.New("dial tcp 127.0.0.1:9: connection refused"))

	clock = now.Add(2 * time.Minute) // fresh: no query
	if rec := get(t, api, APIPrefix+"overview"); rec.Code != http.StatusOK || src.calls.Load() != 1 {
		t.Fatalf("cached: %d after %d queries", rec.Code, src.calls.Load())
	}
	clock = now.Add(8 * time.Minute) // stale but within max-stale
	rec := get(t, api, APIPrefix+"overview")
	var o Overview
	json.Unmarshal(rec.Body.Bytes(), &o)
	if rec.Code != http.StatusOK || !o.Meta.Stale || o.Meta.AgeSeconds != 480 || !strings.Contains(o.Meta.Error, "usage source unavailable") || strings.Contains(rec.Body.String(), "127.0.0.1") ||
		rec.Header().Get("Age") != "480" || rec.Header().Get("Warning") == "" || o.TotalAPICalls != 113000 {
		t.Errorf("stale: %d %+v %v", rec.Code, o.Meta, rec.Header())
	}
	clock = now.Add(20 * time.Minute) // too old
	for _, v := range Views {
		rec = get(t, api, APIPrefix+v)
		var body apiError
		json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusServiceUnavailable || body.LastGoodAgeSeconds == nil || *body.LastGoodAgeSeconds != 1200 ||
			!strings.Contains(body.Error, "usage source unavailable") || rec.Header().Get("Retry-After") == "" ||
			strings.Contains(rec.Body.String(), "127.0.0.1") || strings.Contains(rec.Body.String(), "refused") {
			t.Errorf("%s down: %d %s", v, rec.Code, rec.Body)
		}
	}
	// Another window was never computed: 503 without an age.
	rec = get(t, api, APIPrefix+"overview?days=30")
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "last_good") {
		t.Errorf("never computed: %d %s", rec.Code, rec.Body)
	}
	src.fail(nil)
	if rec := get(t, api, APIPrefix+"overview"); rec.Code != http.StatusOK {
		t.Errorf("recovered: %d", rec.Code)
	}
}

// The series of the current report, against a golden exposition.
func TestRecommendationSeries(t *testing.T) {
	e := newTestEngine(t, &fixedSource{snap: week})
	ctx, cancel := context.WithCancel(context.Background())
	go e.Loop(ctx, 7, time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for e.Current() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if e.Current() == nil {
		t.Fatal("no report")
	}
	var buf bytes.Buffer
	if err := writeSeries(&buf, Collector{e}); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "series.golden.prom")
	if *update {
		os.WriteFile(golden, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := compareSeries(Collector{e}, bytes.NewReader(want)); err != nil {
		t.Error(err)
	}
	// Every recommendation of the JSON has its info and savings series.
	n := strings.Count(buf.String(), "usage_recommendation_info{")
	if m := len(e.Current().Optimization.Recommendations); n != m || m == 0 {
		t.Errorf("%d info series for %d recommendations", n, m)
	}
}
