// Command scale measures the built exporter and optimizer at 1,000, 10,000
// and 50,000 users: it writes a gateway log of realistic per-user traffic
// (every user on several services, activity heavy-tailed across users),
// runs ./usage-exporter on it, and reports series, scrape time and size, RSS
// through scrapes, the state file's size and write rate while idle, and the
// optimizer's overview time and memory. `make bench-scale` runs it.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The header Prometheus 2.x sends, and the one it sends with native
// histograms enabled (protobuf first).
const (
	acceptText     = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptProtobuf = "application/vnd.google.protobuf;proto=io.prometheus.client;encoding=delimited;q=0.7," + acceptText
)

type scenario struct{ users, maxUsers int }

func main() {
	var (
		lines     = flag.Int("lines", 500_000, "log lines per scenario")
		scenarios = flag.String("scenarios", "1000:10000,10000:10000,50000:10000,50000:50000", "users:max_users, comma separated")
		exporter  = flag.String("exporter", "./usage-exporter", "the exporter binary")
		optimizer = flag.String("optimizer", "./usage-optimizer", "the optimizer binary")
		dir       = flag.String("dir", "bench/data/scale", "where logs and state go")
		idle      = flag.Duration("idle", 20*time.Second, "how long to watch the state file while idle")
		label     = flag.String("users.label", "raw", "users.label of the exporter's configuration")
	)
	flag.Parse()
	var rows []result
	for _, s := range strings.Split(*scenarios, ",") {
		u, c, ok := strings.Cut(s, ":")
		users, err1 := strconv.Atoi(u)
		maxUsers, err2 := strconv.Atoi(c)
		if !ok || err1 != nil || err2 != nil {
			fatal(fmt.Errorf("scenario %q: want users:max_users", s))
		}
		r, err := run(scenario{users, maxUsers}, *lines, *exporter, *optimizer, *dir, *idle, *label)
		if err != nil {
			fatal(err)
		}
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "%+v\n", r)
	}
	fmt.Println("| users (cap) | series | scrape text+gzip (3) | scrape protobuf | body | RSS after ingest / through scrapes (peak) | state file | writes idle | optimizer overview, RSS |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %s (%s) | %s | %s | %s ms | %.1f MB | %.0f / %.0f MiB (%.0f) | %.0f KB | %d in %s | %s ms, %.0f MiB |\n",
			thousands(r.users), thousands(r.maxUsers), thousands(r.series), joinMs(r.scrapes), ms(r.protobuf),
			float64(r.body)/1e6, r.rssIngest, r.rssScrapes, r.rssPeak, float64(r.stateBytes)/1e3, r.idleWrites, *idle,
			ms(r.optimizer), r.optimizerRSS)
	}
	fmt.Println()
	fmt.Println("| users (cap) | live requests under __other__ | first users seen labelled | heaviest so far, counted exactly | heaviest of these requests (oracle) | users counted (window) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	share := func(r result, n int) string {
		return fmt.Sprintf("%s (%.1f%%)", thousands(n), 200*float64(n)/float64(r.lines))
	}
	for _, r := range rows {
		fmt.Printf("| %s (%s) | %s | %s | %s | %s | %s |\n", thousands(r.users), thousands(r.maxUsers), share(r, r.other),
			share(r, r.firstOther), share(r, r.exactOther), share(r, r.idealOther), thousands(r.counted))
	}
}

type result struct {
	users, maxUsers int
	lines           int
	series, body    int
	scrapes         []time.Duration
	protobuf        time.Duration
	rssIngest       float64 // MiB
	rssScrapes      float64
	rssPeak         float64
	stateBytes      int64
	idleWrites      int
	optimizer       time.Duration
	optimizerRSS    float64
	overviewUsers   string
	// Requests under __other__: the exporter's, with the top users by
	// traffic labelled, with the first users seen labelled; users counted.
	other, idealOther, firstOther, exactOther, counted int
}

func run(sc scenario, lines int, exporterBin, optimizerBin, dir string, idle time.Duration, label string) (result, error) {
	r := result{users: sc.users, maxUsers: sc.maxUsers, lines: lines}
	base := filepath.Join(dir, fmt.Sprintf("%d-%d", sc.users, sc.maxUsers))
	if err := os.RemoveAll(base); err != nil {
		return r, err
	}
	if err := os.MkdirAll(filepath.Join(base, "state"), 0o755); err != nil {
		return r, err
	}
	logPath := filepath.Join(base, "gateway.log")
	// The first half is the backlog; the second is appended once the first
	// is checkpointed, as live traffic: the users with labels are chosen by
	// then, and the share under __other__ is measured on it.
	earlier, later, err := writeLog(logPath, sc.users, lines, time.Now())
	if err != nil {
		return r, err
	}
	r.idealOther, r.firstOther, r.exactOther = foldedShares(earlier, later, sc.maxUsers)
	cfgPath := filepath.Join(base, "usage-exporter.yml")
	cfg := fmt.Sprintf("logs:\n  sources:\n    - {path: %s, format: json}\nusers: {max_users: %d, label: %s, hash_key: bench}\n",
		logPath, sc.maxUsers, label)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return r, err
	}
	addr, err := freeAddr()
	if err != nil {
		return r, err
	}
	exp := exec.Command(exporterBin, "--config.file="+cfgPath, "--state.dir="+filepath.Join(base, "state"),
		"--log.start=beginning", "--web.listen-address="+addr, "--log.level=warn")
	exp.Stderr, exp.SysProcAttr = os.Stderr, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := exp.Start(); err != nil {
		return r, err
	}
	defer func() { _ = exp.Process.Kill(); _ = exp.Wait() }()
	metricsURL := "http://" + addr + "/metrics"
	if err := waitParsed(exp.Process.Pid, metricsURL, lines/2); err != nil {
		return r, err
	}
	// One more checkpoint: the labels are handed to the heaviest users.
	time.Sleep(6 * time.Second)
	var before int
	if body, _, err := scrape(metricsURL, acceptText, false); err == nil {
		before = sampleSum(body, "usage_exporter_series_overflow_total", `reason="user_cap"`)
	}
	if err := appendFile(logPath, logPath+".next"); err != nil {
		return r, err
	}
	if err := waitParsed(exp.Process.Pid, metricsURL, lines); err != nil {
		return r, err
	}
	r.rssIngest, _ = rss(exp.Process.Pid)
	// The first scrape above shows new series at zero; the next ones release them.
	for range 3 {
		body, d, err := scrape(metricsURL, acceptText, true)
		if err != nil {
			return r, err
		}
		r.scrapes = append(r.scrapes, d)
		r.series, r.body = countSeries(body), len(body)
		cur, peak := rss(exp.Process.Pid)
		r.rssScrapes, r.rssPeak = math.Max(r.rssScrapes, cur), peak
	}
	if body, d, err := scrape(metricsURL, acceptProtobuf, true); err == nil {
		r.protobuf = d
		_ = body
	}
	if body, _, err := scrape(metricsURL, acceptText, false); err == nil {
		r.other = sampleSum(body, "usage_exporter_series_overflow_total", `reason="user_cap"`) - before
	}
	if body, _, err := get("http://"+addr+"/api/v1/window?days=7", ""); err == nil {
		var w struct {
			UniqueUsers int `json:"unique_users"`
		}
		_ = json.Unmarshal(body, &w)
		r.counted = w.UniqueUsers
	}
	_, r.rssPeak = rss(exp.Process.Pid)
	// Idle: count the state file's writes, from the checkpoint after the
	// scrapes (which releases the series they saw at zero).
	time.Sleep(6 * time.Second)
	state := filepath.Join(base, "state", "checkpoint.bin")
	last := modTime(state)
	for end := time.Now().Add(idle); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if m := modTime(state); !m.Equal(last) {
			r.idleWrites++
			last = m
		}
	}
	if fi, err := os.Stat(state); err == nil {
		r.stateBytes = fi.Size()
	}
	// The optimizer on the exporter.
	oaddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	opt := exec.Command(optimizerBin, "--exporter.url="+metricsURL, "--web.listen-address="+oaddr, "--log.level=warn",
		"--analysis.interval=24h")
	opt.Stderr, opt.SysProcAttr = os.Stderr, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := opt.Start(); err != nil {
		return r, err
	}
	defer func() { _ = opt.Process.Kill(); _ = opt.Wait() }()
	if err := waitHTTP("http://" + oaddr + "/-/ready"); err != nil {
		return r, err
	}
	// The background analysis runs at start: let it finish, then time a
	// window it has not cached.
	time.Sleep(time.Second)
	for cpuBusy(opt.Process.Pid) {
		time.Sleep(200 * time.Millisecond)
	}
	body, d, err := get("http://"+oaddr+"/api/v1/analytics/usage/overview?days=3", "")
	if err != nil {
		return r, err
	}
	r.optimizer = d
	_, r.optimizerRSS = rss(opt.Process.Pid)
	if i := bytes.Index(body, []byte(`"total_users":`)); i >= 0 {
		r.overviewUsers = string(body[i : i+min(30, len(body)-i)])
	}
	return r, nil
}

// writeLog writes the gateway's JSON lines: each user on two to four of the
// five services (one line each at least), the rest of the lines drawn by a
// heavy-tailed activity (log-normal weights), over the six hours before now.
// The first half goes to path, the second to path.next. It returns each
// user's lines in either half, users in the order they first appear.
func writeLog(path string, users, lines int, now time.Time) (earlier, later []int, err error) {
	rng := rand.New(rand.NewPCG(42, uint64(users)))
	services := []string{"llm", "embeddings", "search", "tts", "stt"}
	models := []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-3.5-turbo", "claude-3-5-sonnet",
		"claude-3-5-haiku", "claude-sonnet-4", "gemini-2.0-flash", "o3-mini"}
	tiers := []string{"trial", "trial", "trial", "starter", "starter", "professional", "enterprise"}
	type user struct {
		id, tier string
		services []int
	}
	us := make([]user, users)
	weights := make([]float64, users)
	var total float64
	for i := range us {
		n := 2 + rng.IntN(3)
		us[i] = user{id: fmt.Sprintf("user-%06d@example.com", i), tier: tiers[rng.IntN(len(tiers))],
			services: rng.Perm(len(services))[:n]}
		total += math.Exp(rng.NormFloat64() * 1.2)
		weights[i] = total
	}
	type call struct{ user, service int }
	calls := make([]call, 0, lines)
	for i, u := range us {
		for _, s := range u.services {
			if len(calls) < lines {
				calls = append(calls, call{i, s})
			}
		}
	}
	for len(calls) < lines {
		x := rng.Float64() * total
		lo, hi := 0, users-1
		for lo < hi {
			mid := (lo + hi) / 2
			if weights[mid] < x {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		u := us[lo]
		calls = append(calls, call{lo, u.services[rng.IntN(len(u.services))]})
	}
	rng.Shuffle(len(calls), func(i, j int) { calls[i], calls[j] = calls[j], calls[i] })
	start := now.Add(-6 * time.Hour)
	if month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC); start.Before(month) {
		start = month
	}
	step := now.Sub(start) / time.Duration(lines+1)
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	seen := make([]int, users) // 1 + position in order of first appearance
	for i, c := range calls {
		if i == len(calls)/2 {
			if err := w.Flush(); err != nil {
				return nil, nil, err
			}
			if err := f.Close(); err != nil {
				return nil, nil, err
			}
			if f, err = os.Create(path + ".next"); err != nil {
				return nil, nil, err
			}
			w.Reset(f)
		}
		if seen[c.user] == 0 {
			earlier, later = append(earlier, 0), append(later, 0)
			seen[c.user] = len(earlier)
		}
		if i >= len(calls)/2 {
			later[seen[c.user]-1]++
		} else {
			earlier[seen[c.user]-1]++
		}
		u := us[c.user]
		svc := services[c.service]
		route := rng.IntN(40)
		ts := start.Add(time.Duration(i+1) * step).UTC().Format("2006-01-02T15:04:05.000Z")
		status := 200
		if rng.IntN(50) == 0 {
			status = 500
		}
		fmt.Fprintf(w, `{"timestamp":"%s","user_id":"%s","method":"POST","path":"/api/v1/%s/op%02d","status":%d,"duration_ms":%.1f,"size":%d,"service":"%s","tier":"%s"`,
			ts, u.id, svc, route, status, 20+rng.ExpFloat64()*400, 200+rng.IntN(8000), svc, u.tier)
		switch svc {
		case "llm":
			fmt.Fprintf(w, `,"model":"%s","input_tokens":%d,"output_tokens":%d,"cache_key":"%016x"`,
				models[rng.IntN(len(models))], 50+rng.IntN(4000), 10+rng.IntN(800), rng.IntN(lines/4+1))
		case "embeddings":
			fmt.Fprintf(w, `,"model":"text-embedding-3-small","input_tokens":%d`, 20+rng.IntN(2000))
		}
		w.WriteString("}\n")
	}
	if err := w.Flush(); err != nil {
		return nil, nil, err
	}
	return earlier, later, f.Close()
}

// waitParsed waits until the exporter is idle with n lines parsed and
// published.
func waitParsed(pid int, metricsURL string, n int) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		time.Sleep(500 * time.Millisecond)
		if time.Now().After(deadline) {
			return fmt.Errorf("the exporter did not parse %d lines within 5 minutes", n)
		}
		if cpuBusy(pid) {
			continue
		}
		body, _, err := scrape(metricsURL, acceptText, false)
		if err == nil && parsedLines(body) >= n {
			return nil
		}
	}
}

func appendFile(dst, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// foldedShares are the later requests left to __other__ with a cap of max
// users: labelling the heaviest of the later requests (an oracle),
// labelling the first users seen (the cap before heavy hitters), and
// labelling the heaviest of the earlier requests counted exactly (the best
// a choice made from the past can do).
func foldedShares(earlier, later []int, max int) (ideal, first, exact int) {
	byCount := func(counts []int) []int {
		idx := make([]int, len(counts))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return counts[b] - counts[a] })
		return idx
	}
	for rank, i := range byCount(later) {
		if rank >= max {
			ideal += later[i]
		}
	}
	for i, n := range later {
		if i >= max {
			first += n
		}
	}
	for rank, i := range byCount(earlier) {
		if rank >= max {
			exact += later[i]
		}
	}
	return ideal, first, exact
}

// sampleSum sums the samples of a family whose labels contain match.
func sampleSum(body []byte, family, match string) int {
	n := 0.0
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, family+"{") && strings.Contains(l, match) {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += v
		}
	}
	return int(n)
}

func scrape(url, accept string, gz bool) ([]byte, time.Duration, error) {
	body, d, err := get(url, accept, map[bool]string{true: "gzip"}[gz])
	return body, d, err
}

// get fetches url, timing the whole response; accept and encoding are
// optional headers (the body is returned decompressed).
func get(url, accept string, encoding ...string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if len(encoding) > 0 && encoding[0] != "" {
		req.Header.Set("Accept-Encoding", encoding[0])
	}
	start := time.Now()
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%s: %s: %s", url, resp.Status, raw)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, 0, err
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, 0, err
		}
	}
	return raw, d, nil
}

func waitHTTP(url string) error {
	for range 200 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer", url)
}

// parsedLines sums usage_exporter_log_lines_total{result="parsed"}.
func parsedLines(body []byte) int {
	n := 0
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "usage_exporter_log_lines_total{") && strings.Contains(l, `result="parsed"`) {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += int(v)
		}
	}
	return n
}

func countSeries(body []byte) int {
	n := 0
	for _, l := range bytes.Split(body, []byte("\n")) {
		if len(l) > 0 && l[0] != '#' {
			n++
		}
	}
	return n
}

// cpuBusy reports whether the process used more than 5% of a core over 300 ms.
func cpuBusy(pid int) bool {
	a := cpuTicks(pid)
	time.Sleep(300 * time.Millisecond)
	return cpuTicks(pid)-a > 1 // ticks are 10 ms
}

func cpuTicks(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// rss returns VmRSS and VmHWM in MiB.
func rss(pid int) (cur, peak float64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			cur = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return cur, peak
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func ms(d time.Duration) string {
	return strconv.Itoa(int(d.Round(time.Millisecond) / time.Millisecond))
}

func joinMs(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = ms(d)
	}
	return strings.Join(s, "/") + " ms"
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}
