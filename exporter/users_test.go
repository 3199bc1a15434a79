package exporter

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/internal/auth"
	"github.com/usage-exporter/usage-exporter/internal/window"
)

// userLines writes n gateway lines of each user, in rounds.
func userLines(users []string, n int, tier string) []byte {
	var b bytes.Buffer
	for i := range n {
		for _, u := range users {
			fmt.Fprintf(&b, `{"timestamp":"2025-11-10T10:%02d:%02dZ","user_id":"%s","tier":"%s","method":"POST","path":"/api/v1/search","service":"search","status":200,"duration_ms":10}`+"\n",
				i/60%60, i%60, u, tier)
		}
	}
	return b.Bytes()
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// scrapeText renders /metrics of the stages as Prometheus text, by series.
func scrapeText(t *testing.T, in *ingester, q *quotas) map[string]float64 {
	t.Helper()
	reg := in.count.m.reg.(*prometheus.Registry)
	h := newMux(reg, reg, in.count.m.Lines, q, windowHandler{}, auth.NewReloadable(auth.DefaultConfig(), nil, nil, nil), Options{}, discardLogger(), new(atomic.Bool), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// labelledUsers lists the user labels of a family in a scrape.
func labelledUsers(scrape map[string]float64, family string) []string {
	var out []string
	for s := range scrape {
		if !strings.HasPrefix(s, family+"{") {
			continue
		}
		i := strings.Index(s, `user="`)
		u := s[i+6 : i+6+strings.IndexByte(s[i+6:], '"')]
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// With more users than users.max_users, the heaviest keep a label of their
// own even when they arrive last: the light users who came first lose
// theirs at the next checkpoint, their series leave, and the labels then
// stay put. Quota use is exact for every user, labelled or not.
func TestHeaviestUsersKeepTheirLabels(t *testing.T) {
	cfg := testConfig("json")
	cfg.Users.MaxUsers = 10
	reg := prometheus.NewPedanticRegistry()
	d, in := newStages(t, cfg, reg)
	d.now, in.attr.now = testNow, testNow
	q := newQuotas(in.ledger.store, cfg, testNow)
	light, heavy := names("light", 40), names("heavy", 10)
	ingestSync(d, in, &tailer.Batch{Data: userLines(light, 1, "trial")})
	ingestSync(d, in, &tailer.Batch{Data: userLines(heavy, 30, "starter")})
	saved(in, q)
	scrape := scrapeText(t, in, q)
	// The light users who had labels lost them with their series.
	if got := labelledUsers(scrape, "usage_user_requests_total"); !slices.Equal(got, []string{otherLabel}) {
		t.Errorf("user series after the hand-over: %v, want only __other__ (the heavy users' series start with their next call)", got)
	}
	// Quota use: every heavy user exactly (30 calls, before their label
	// too), the light ones summed under __other__.
	want := map[string]float64{`usage_quota_used{resource="calls",tier="trial",user="__other__"}`: 40}
	for _, u := range heavy {
		want[`usage_quota_used{resource="calls",tier="starter",user="`+u+`"}`] = 30
	}
	for s, v := range want {
		if scrape[s] != v {
			t.Errorf("%s = %v, want %v", s, scrape[s], v)
		}
	}
	if got := labelledUsers(scrape, "usage_quota_used"); len(got) != 11 {
		t.Errorf("quota series for %d users (%v), want the 10 heavy and __other__", len(got), got)
	}

	// The next calls: the heavy users' own series, the light ones' in __other__.
	ingestSync(d, in, &tailer.Batch{Data: userLines(append(slices.Clone(light), heavy...), 2, "")})
	for range 5 {
		saved(in, q) // no more hand-overs
	}
	scrape = scrapeText(t, in, q)
	if got := labelledUsers(scrape, "usage_user_requests_total"); !slices.Equal(got, append([]string{otherLabel}, heavy...)) {
		t.Errorf("user series: %v, want __other__ and the heavy users", got)
	}
	for _, u := range heavy {
		if v := scrape[`usage_user_requests_total{api_service="search",tier="unknown",user="`+u+`"}`]; v != 2 {
			t.Errorf("%s: %v requests since their label, want 2", u, v)
		}
	}
	// __other__ holds every call not counted under a label: 30 light and
	// 300 heavy before the hand-over, 80 light after (the first ten light
	// users' calls left with their series).
	var other float64
	for s, v := range scrape {
		if strings.HasPrefix(s, "usage_user_requests_total{") && strings.Contains(s, `user="__other__"`) {
			other += v
		}
	}
	if other != 30+300+80 {
		t.Errorf("__other__ requests %v, want %v", other, 30+300+80)
	}
	if v := scrape[`usage_exporter_series_overflow_total{api_service="",reason="user_cap"}`]; v != 30+300+80 {
		t.Errorf("user_cap overflow %v, want %v (the lines of users without a label, after the first ten)", v, 30+300+80)
	}
	if v := scrape[`usage_requests_total{api_service="search",code="200",method="POST",route="/api/v1/search"}`]; v != 40+300+100 {
		t.Errorf("requests %v: every line is counted", v)
	}
}

// quotaFamilies renders every usage_quota_* sample an exporter serves.
func quotaFamilies(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "usage_quota_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// After a restart, the quota series are served at once from the state
// file, every one as it was: the same users, tiers (from lines, from
// plans.users, the default), __other__, limits, ratios and period; the
// quota API says the same.
func TestQuotasSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	var b bytes.Buffer
	for _, u := range []struct {
		id, tier string
		calls    int
	}{{"u1", "starter", 5}, {"u2", "professional", 4}, {"u3", "trial", 3}, {"u4", "enterprise", 2}, {"u5", "", 2}, {"u6", "", 1}} {
		for i := range u.calls {
			fmt.Fprintf(&b, `{"timestamp":"2025-11-10T10:00:%02dZ","user_id":"%s","tier":"%s","path":"/api/v1/llm/chat/completions","status":200,"model":"gpt-4","input_tokens":%d,"output_tokens":1}`+"\n",
				i, u.id, u.tier, 10*(i+1))
		}
	}
	if err := os.WriteFile(logPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig(logPath)
	cfg.Users.MaxUsers = 5
	cfg.Metrics.QuotaRatio = true
	cfg.Plans.Users = map[string]string{"u5": "professional"}
	stateDir := filepath.Join(dir, "state")
	inst := startInstance(t, cfg, stateDir, "")
	waitFor(t, "lines", func() bool { return linesParsed(t, inst.reg) == 17 })
	waitFor(t, "quota series", func() bool { return len(quotaFamilies(t, inst.reg)) > 0 })
	before := quotaFamilies(t, inst.reg)
	var apiBefore, usersBefore map[string]any
	getJSON(t, inst.url+"/api/v1/quotas?user=u5", &apiBefore)
	getJSON(t, inst.url+"/api/v1/quotas/users", &usersBefore)
	if err := inst.stop(); err != nil {
		t.Fatal(err)
	}
	// Every kind of series is there to compare.
	for _, want := range []string{
		"usage_quota_used,resource=calls,tier=starter,user=u1",
		"usage_quota_used,resource=calls,tier=professional,user=u5",
		"usage_quota_used_ratio,resource=calls,tier=starter,user=u1",
		"usage_quota_limit,resource=calls,tier=trial",
		"usage_quota_period_start_timestamp_seconds",
	} {
		if _, ok := before[want]; !ok {
			t.Errorf("before the restart, no %s in %v", want, before)
		}
	}
	var other int
	for k := range before {
		if strings.HasPrefix(k, "usage_quota_used,") && strings.HasSuffix(k, "user=__other__") {
			other++
		}
	}
	if other == 0 {
		t.Errorf("no __other__ quota series with 6 users and 5 labels: %v", before)
	}

	inst2 := startInstance(t, cfg, stateDir, "")
	after := quotaFamilies(t, inst2.reg) // the first scrape, no new line
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("quota series after the restart:\n%v\nbefore:\n%v", after, before)
	}
	var apiAfter, usersAfter map[string]any
	getJSON(t, inst2.url+"/api/v1/quotas?user=u5", &apiAfter)
	getJSON(t, inst2.url+"/api/v1/quotas/users", &usersAfter)
	if fmt.Sprint(apiAfter) != fmt.Sprint(apiBefore) || fmt.Sprint(usersAfter) != fmt.Sprint(usersBefore) {
		t.Errorf("quota API after the restart:\n%v\n%v\nbefore:\n%v\n%v", apiAfter, usersAfter, apiBefore, usersBefore)
	}
	if apiAfter["tier"] != "professional" {
		t.Errorf("u5's tier %v, want professional (plans.users)", apiAfter["tier"])
	}
}

// Idle, the state file is left alone: checkpoints find nothing new (their
// timestamp still moves), until a line comes.
func TestStateFileUnchangedWhileIdle(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	if err := os.WriteFile(logPath, userLines(names("u", 20), 3, "trial"), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	inst := startInstance(t, fastConfig(logPath), stateDir, "")
	waitFor(t, "lines", func() bool { return linesParsed(t, inst.reg) == 60 })
	checkpoint := func() float64 {
		v, _ := gaugeValue(t, inst.reg, "usage_exporter_checkpoint_last_success_timestamp_seconds")
		return v
	}
	// Two checkpoints after scrapes have seen every series (released).
	for range 2 {
		at := checkpoint()
		waitFor(t, "a checkpoint", func() bool { return checkpoint() > at })
	}
	file := filepath.Join(stateDir, stateFile)
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)
	for range 10 {
		at := checkpoint()
		waitFor(t, "an idle checkpoint", func() bool { return checkpoint() > at })
	}
	after, _ := os.Stat(file)
	if again, _ := os.ReadFile(file); !after.ModTime().Equal(before.ModTime()) || !bytes.Equal(again, data) {
		t.Fatalf("the state file changed while idle: %s -> %s", before.ModTime(), after.ModTime())
	}
	// A line is something to write.
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(userLines([]string{"u00"}, 1, "trial"))
	f.Close()
	waitFor(t, "the new line", func() bool { return linesParsed(t, inst.reg) == 61 })
	waitFor(t, "the state file written", func() bool {
		fi, err := os.Stat(file)
		return err == nil && !fi.ModTime().Equal(before.ModTime())
	})
}

// A new billing period is worth a checkpoint even without a line: the
// quota view moves to it.
func TestNewPeriodIsDirty(t *testing.T) {
	cfg := testConfig("json")
	d, in := newStages(t, cfg, prometheus.NewRegistry())
	ingestSync(d, in, &tailer.Batch{Data: userLines([]string{"a"}, 1, "trial")})
	if !in.dirty() {
		t.Fatal("lines applied, not dirty")
	}
	in.snapshot(testNow())
	if in.dirty() {
		t.Fatal("dirty right after a snapshot")
	}
	in.ledger.now = func() time.Time { return testNow().AddDate(0, 1, 0) }
	if !in.dirty() {
		t.Error("a new period is not dirty")
	}
	if v := in.quotaView(in.view); v == in.view || v.period.ID != "2025-12-01" {
		t.Errorf("the view of the new period: %v", v.period.ID)
	}
}

// Under users.label: hashed, user ids stay off the disk: the ledger, the
// tiers and the labels' state hold their keyed hashes; the quota API takes
// the raw id (or the hash) and finds the user. A state file written with
// raw ids is hashed at the first start under the hashed policy, its quota
// use kept.
func TestHashedIDsStayOffDisk(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	os.WriteFile(logPath, userLines([]string{"alice@example.com", "bob@example.com"}, 3, "starter"), 0o644)
	stateDir := filepath.Join(dir, "state")
	file := filepath.Join(stateDir, stateFile)
	quotaOf := func(inst *instance, user string) float64 {
		var resp struct {
			Tier string           `json:"tier"`
			Used map[string]int64 `json:"used"`
		}
		getJSON(t, inst.url+"/api/v1/quotas?user="+user, &resp)
		if resp.Used["calls"] > 0 && resp.Tier != "starter" {
			t.Errorf("%s: tier %q, want starter", user, resp.Tier)
		}
		return float64(resp.Used["calls"])
	}

	// Raw first: the state file has the raw ids.
	inst := startInstance(t, fastConfig(logPath), stateDir, "")
	waitFor(t, "lines", func() bool { return linesParsed(t, inst.reg) == 6 })
	waitFor(t, "the ledger", func() bool { return quotaOf(inst, "alice@example.com") == 3 })
	inst.stop()
	if data, _ := os.ReadFile(file); !bytes.Contains(data, []byte("alice@example.com")) {
		t.Fatal("the raw policy's state file lacks the raw id (the test cannot tell the difference)")
	}

	// Then hashed: the same state directory, no raw id left in the file.
	cfg := fastConfig(logPath)
	cfg.Users = UsersConfig{Label: UserLabelHashed, HashKey: "test-key", MaxUsers: 10}
	hash := storedIDOf(cfg.Users, "alice@example.com")
	inst = startInstance(t, cfg, stateDir, "")
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(userLines([]string{"alice@example.com"}, 1, "starter"))
	f.Close()
	waitFor(t, "the new line", func() bool { return linesParsed(t, inst.reg) == 7 })
	waitFor(t, "alice's use, kept and grown", func() bool { return quotaOf(inst, "alice@example.com") == 4 })
	if got := quotaOf(inst, hash); got != 4 {
		t.Errorf("the quota API by hash: %v calls, want 4", got)
	}
	if got := quotaFamilies(t, inst.reg)["usage_quota_used,resource=calls,tier=starter,user="+hash]; got != 4 {
		t.Errorf("usage_quota_used of alice's hash %v, want 4", got)
	}
	inst.stop()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"alice@example.com", "bob@example.com"} {
		if bytes.Contains(data, []byte(raw)) {
			t.Errorf("the state file holds the raw id %s under users.label: hashed", raw)
		}
	}
	if !bytes.Contains(data, []byte(hash)) {
		t.Errorf("the state file lacks alice's hash %s", hash)
	}
}

// The series budget per user is what docs/metrics.md states: a user of the
// five default services with model calls has 9 series by default, 15 with
// the per-service cost and the quota ratio.
func TestSeriesPerUser(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`\| \*\*a user of the five default services, with model calls\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \|`).
		FindSubmatch(doc)
	if row == nil {
		t.Fatal("docs/metrics.md states no series budget per user")
	}
	documented := []string{string(row[1]), string(row[2])}
	var b bytes.Buffer
	for _, svc := range []string{"llm", "embeddings", "search", "tts", "stt"} {
		fmt.Fprintf(&b, `{"timestamp":"2025-11-10T10:00:00Z","user_id":"alice","tier":"starter","path":"/api/v1/%s/op","service":"%s","status":200,"duration_ms":10,"model":"gpt-4o","input_tokens":100,"output_tokens":10}`+"\n",
			svc, svc)
	}
	for i, options := range []bool{false, true} {
		cfg := testConfig("json")
		cfg.Metrics.UserCostByService, cfg.Metrics.QuotaRatio = options, options
		cfg.Pricing.PerCall = map[string]float64{"search": 0.001, "tts": 0.001, "stt": 0.001}
		d, in := newStages(t, cfg, prometheus.NewPedanticRegistry())
		d.now, in.attr.now = testNow, testNow
		q := newQuotas(in.ledger.store, cfg, testNow)
		ingestSync(d, in, &tailer.Batch{Data: b.Bytes()})
		saved(in, q)
		n := 0
		for s := range scrapeText(t, in, q) {
			if strings.Contains(s, `user="alice"`) {
				n++
			}
		}
		if strconv.Itoa(n) != documented[i] {
			t.Errorf("options %v: alice has %d series, docs/metrics.md says %s", options, n, documented[i])
		}
	}
}

// Beyond users.max_users, the user count is still right: the window's
// distinct users (a sketch of every user, labelled or not) are within the
// sketch's error (three standard errors here) of the users in the lines.
func TestUserCountBeyondTheCap(t *testing.T) {
	cfg := testConfig("json")
	cfg.Users.MaxUsers = 10
	d, in := newStages(t, cfg, prometheus.NewRegistry())
	d.now, in.attr.now = testNow, testNow
	q := newQuotas(in.ledger.store, cfg, testNow)
	const users = 5000
	ingestSync(d, in, &tailer.Batch{Data: userLines(names("user-", users), 2, "trial")})
	saved(in, q)
	w, err := in.rollups.Window(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if rel := math.Abs(float64(w.UniqueUsers-users)) / users; rel > 3*window.DistinctError {
		t.Errorf("%d unique users, want %d within %.1f%%", w.UniqueUsers, users, 300*window.DistinctError)
	}
	if got := w.Services["search"].UniqueUsers; math.Abs(float64(got-users))/users > 3*window.DistinctError {
		t.Errorf("search: %d unique users, want %d", got, users)
	}
	if len(w.Users) > 11 {
		t.Errorf("%d users in the window's labelled figures, want at most the 10 labels and __other__", len(w.Users))
	}
}
