package exporter

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/state"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/internal/auth"
	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

// benchLines are one gateway request in both formats.
var (
	benchNginx = []byte(`10.20.9.241 - user_022 [24/Oct/2025:00:00:00 +0000] "POST /api/v1/llm/chat/completions HTTP/1.1" 200 2557 "-" "python-requests/2.31.0" 1.716`)
	benchJSON  = []byte(`{"timestamp":"2025-10-24T00:00:00.004Z","user_id":"user_022","method":"POST","path":"/api/v1/llm/chat/completions","status":200,"duration_ms":1716.2,"size":2557,"ip_address":"10.20.9.241","user_agent":"python-requests/2.31.0","service":"llm"}`)
	// benchJSONOrg is the same line of an organisation's user.
	benchJSONOrg = []byte(`{"timestamp":"2025-10-24T00:00:00.004Z","user_id":"user_022","org_id":"org-acme","method":"POST","path":"/api/v1/llm/chat/completions","status":200,"duration_ms":1716.2,"size":2557,"ip_address":"10.20.9.241","user_agent":"python-requests/2.31.0","service":"llm"}`)
)

// BenchmarkIngestLine is parse plus metric update for one line: the work the
// exporter does per line once the bytes are in memory. The path must not
// allocate.
func BenchmarkIngestLine(b *testing.B) {
	for _, tc := range []struct {
		format string
		line   []byte
		name   string
	}{{"nginx", benchNginx, "nginx"}, {"json", benchJSON, "json"}, {"json", benchJSONOrg, "json-org"}} {
		b.Run(tc.name, func(b *testing.B) {
			d, in := newStages(b, testConfig(tc.format), prometheus.NewRegistry())
			batch := &tailer.Batch{Data: append(append([]byte{}, tc.line...), '\n')}
			b.ReportAllocs()
			for b.Loop() {
				ingestSync(d, in, batch)
			}
		})
	}
}

// benchFile returns the file named by an environment variable (make bench
// points it at the 1,000,000-line files of the anchors), or writes n lines
// of the same shape to a temporary file.
func benchFile(b *testing.B, env, format string, n int) (string, int) {
	if p := os.Getenv(env); p != "" {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		lines := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines++
		}
		return p, lines
	}
	path := filepath.Join(b.TempDir(), "access.log")
	var buf bytes.Buffer
	paths := []string{"/api/v1/llm/chat/completions", "/api/v1/embeddings", "/api/v1/search", "/api/v1/users/%d/usage", "/healthz"}
	for i := 0; i < n; i++ {
		p := paths[i%len(paths)]
		if p == "/api/v1/users/%d/usage" {
			p = fmt.Sprintf(p, 1000+i%9000)
		}
		user := "user_" + strconv.Itoa(i%50)
		if format == "nginx" {
			fmt.Fprintf(&buf, "10.20.9.241 - %s [24/Oct/2025:00:%02d:%02d +0000] \"POST %s HTTP/1.1\" 200 2557 \"-\" \"python-requests/2.31.0\" 1.%03d\n",
				user, i/60%60, i%60, p, i%1000)
		} else {
			fmt.Fprintf(&buf, `{"timestamp":"2025-10-24T00:%02d:%02d.004Z","user_id":"%s","method":"POST","path":"%s","status":200,"duration_ms":%d.2,"size":2557,"ip_address":"10.20.9.241","user_agent":"python-requests/2.31.0","service":"llm"}`+"\n",
				i/60%60, i%60, user, p, i%3000)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return path, n
}

// BenchmarkBacklog reads a whole file from its start through the tailer,
// parser, classifier and metric updates: the end-to-end backlog path.
func BenchmarkBacklog(b *testing.B) {
	for _, tc := range []struct{ format, env string }{
		{"nginx", "USAGE_BENCH_NGINX"},
		{"json", "USAGE_BENCH_JSON"},
	} {
		b.Run(tc.format, func(b *testing.B) {
			path, lines := benchFile(b, tc.env, tc.format, 200000)
			fi, _ := os.Stat(path)
			var total time.Duration
			for b.Loop() {
				total += backlogOnce(b, path, tc.format, lines)
			}
			b.SetBytes(fi.Size())
			b.ReportMetric(float64(lines)*float64(b.N)/total.Seconds(), "lines/s")
		})
	}
}

func backlogOnce(b *testing.B, path, format string, lines int) time.Duration {
	cfg := fastConfig(path)
	cfg.Logs.Sources[0].Format = format
	cfg.Logs.Start = tailer.StartBeginning
	d, in := newStages(b, cfg, prometheus.NewRegistry())
	t, err := tailer.New(cfg.Logs.Config, []string{path}, nil, discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	target := fi(b, path)
	events := make(chan *eventBatch, 4)
	start := time.Now()
	go t.Run(ctx)
	go decodeLoop(t, d, events)
	var elapsed time.Duration
	for eb := range events {
		in.ingest(eb)
		end := eb.pos.Offset
		putEventBatch(eb)
		if end >= target && elapsed == 0 {
			elapsed = time.Since(start)
			cancel()
		}
	}
	src := in.sources[0]
	got := src.parsed.Value() + src.invalid.Value() + src.filtered.Value()
	if int(got) != lines {
		b.Fatalf("ingested %v lines, want %d", got, lines)
	}
	return elapsed
}

func fi(b *testing.B, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

// BenchmarkScrape gathers and encodes /metrics with 10,000 users and 200 routes.
func BenchmarkScrape(b *testing.B) {
	cfg, in := scaleStages(b, 10000)
	reg := in.count.m.reg.(*prometheus.Registry)
	q := newQuotas(in.ledger.store, cfg, testNow)
	saved(in, q)
	h := newMux(reg, reg, in.count.m.Lines, q, windowHandler{}, auth.NewReloadable(cfg.Auth, nil, nil, nil), Options{}, discardLogger(), new(atomic.Bool), nil)
	// What Prometheus asks for: text, or protobuf when native histograms are
	// enabled; gzip either way.
	for _, accept := range []struct{ name, header string }{
		{"text", "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"},
		{"protobuf", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,*/*;q=0.1"},
	} {
		b.Run(accept.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/metrics", nil)
				req.Header.Set("Accept", accept.header)
				req.Header.Set("Accept-Encoding", "gzip")
				h.ServeHTTP(rec, req)
				if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
					b.Fatalf("scrape status %d, encoding %q", rec.Code, rec.Header().Get("Content-Encoding"))
				}
			}
		})
	}
}

// scaleStages are the stages after users' calls on 200 routes of five
// services, each user on three services (model calls with tokens on llm and
// embeddings) and one of the four tiers: the scale the scrape and the
// checkpoint are measured at, with a real gateway's series per user.
func scaleStages(b *testing.B, users int) (*Config, *ingester) {
	cfg := testConfig("json")
	cfg.Users.MaxUsers = users
	reg := prometheus.NewRegistry()
	d, in := newStages(b, cfg, reg)
	services := []string{"llm", "embeddings", "search", "tts", "stt"}
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gemini-2.0-flash"}
	tiers := []string{"trial", "starter", "professional", "enterprise"}
	codes := []int{200, 400, 429, 500}
	var buf bytes.Buffer
	for u := range users {
		for k := range 3 {
			s := (u + k) % len(services)
			fmt.Fprintf(&buf, `{"user_id":"user_%06d","tier":"%s","method":"POST","path":"/api/v1/%s/op%03d","service":"%s","status":%d,"duration_ms":%d`,
				u, tiers[u%len(tiers)], services[s], s*40+u/5%40, services[s], codes[u%len(codes)], 10+u%50*37)
			switch services[s] {
			case "llm":
				fmt.Fprintf(&buf, `,"model":"%s","input_tokens":%d,"output_tokens":%d`, models[u%len(models)], 100+u%900, 10+u%300)
			case "embeddings":
				fmt.Fprintf(&buf, `,"model":"text-embedding-3-small","input_tokens":%d`, 20+u%500)
			}
			buf.WriteString("}\n")
		}
	}
	ingestSync(d, in, &tailer.Batch{Data: buf.Bytes()})
	if n, _ := in.attr.users.tracker.Len(); n != users {
		b.Fatalf("%d users, want %d", n, users)
	}
	if n := len(in.count.routes); n != 200 {
		b.Fatalf("%d routes, want 200", n)
	}
	return cfg, in
}

// BenchmarkCheckpoint is one checkpoint at that scale: taking the snapshot
// and encoding the state file (positions, ledger, every series), and
// writing it (temporary file, fsync, rename).
func BenchmarkCheckpoint(b *testing.B) {
	for _, users := range []int{10000, 50000} {
		b.Run(fmt.Sprint(users/1000, "k"), func(b *testing.B) {
			_, in := scaleStages(b, users)
			dir, err := state.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer dir.Close()
			snap := in.snapshot(testNow())
			b.Run("encode", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					snap = in.snapshot(testNow())
				}
				b.ReportMetric(float64(len(snap.data)), "bytes")
				b.ReportMetric(float64(in.count.m.Lines.Snapshot().Len()), "series")
			})
			b.Run("write", func(b *testing.B) {
				for b.Loop() {
					if err := dir.WriteBytes(stateFile, snap.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkFollow appends lines to a followed file, 100 lines a write, as
// fast as the writer can, and measures until the last is counted: the live
// path (buffered reads at every poll, 10 ms here).
func BenchmarkFollow(b *testing.B) {
	src, lines := benchFile(b, "USAGE_BENCH_NGINX", "nginx", 300000)
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	const want = 300000
	if lines > want {
		cut := 0
		for i := 0; i < want; i++ {
			cut += bytes.IndexByte(data[cut:], '\n') + 1
		}
		data, lines = data[:cut], want
	}
	var chunks [][]byte
	for rest := data; len(rest) > 0; {
		end := 0
		for i := 0; i < 100 && end < len(rest); i++ {
			end += bytes.IndexByte(rest[end:], '\n') + 1
		}
		chunks = append(chunks, rest[:end])
		rest = rest[end:]
	}
	var total time.Duration
	for b.Loop() {
		total += followOnce(b, chunks, lines)
	}
	b.ReportMetric(float64(lines)*float64(b.N)/total.Seconds(), "lines/s")
}

func followOnce(b *testing.B, chunks [][]byte, lines int) time.Duration {
	path := filepath.Join(b.TempDir(), "access.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// The file must have a first line before the follower takes it up.
	if _, err := f.Write(chunks[0]); err != nil {
		b.Fatal(err)
	}
	cfg := fastConfig(path)
	cfg.Logs.Sources[0].Format = "nginx"
	d, in := newStages(b, cfg, prometheus.NewRegistry())
	t, err := tailer.New(cfg.Logs.Config, []string{path}, nil, discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan *eventBatch, 4)
	go t.Run(ctx)
	go decodeLoop(t, d, events)
	src := in.sources[0]
	count := func() int {
		return int(src.parsed.Value() + src.invalid.Value() + src.filtered.Value())
	}
	for eb := range events { // wait until the first chunk is in: following has begun
		in.ingest(eb)
		putEventBatch(eb)
		if count() == bytes.Count(chunks[0], []byte{'\n'}) {
			break
		}
	}
	start := time.Now()
	go func() {
		for _, c := range chunks[1:] {
			if _, err := f.Write(c); err != nil {
				panic(err)
			}
		}
	}()
	for eb := range events {
		in.ingest(eb)
		putEventBatch(eb)
		if count() == lines {
			break
		}
	}
	elapsed := time.Since(start)
	cancel()
	for eb := range events {
		putEventBatch(eb)
	}
	return elapsed
}

// BenchmarkLedger ingests lines of 10,000 users with the ledger on: in
// memory (embedded), and committed to a real Redis in batches, as the
// committer does every flush interval.
func BenchmarkLedger(b *testing.B) {
	var buf bytes.Buffer
	const lines = 200000
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&buf, `{"timestamp":"2025-11-03T12:00:00Z","user_id":"user-%05d","path":"/api/v1/llm/chat/completions","status":200,"model":"gpt-4o","input_tokens":%d,"output_tokens":20}`+"\n",
			i%10000, 100+i%50)
	}
	data := buf.Bytes()
	var batches []*tailer.Batch
	for len(data) > 0 {
		n := min(len(data), 128<<10)
		n = bytes.LastIndexByte(data[:n], '\n') + 1
		batches = append(batches, &tailer.Batch{Data: data[:n]})
		data = data[n:]
	}
	for _, mode := range []string{"embedded", "redis"} {
		b.Run(mode, func(b *testing.B) {
			cfg := testConfig("json")
			cfg.Users.MaxUsers = 20000
			reg := prometheus.NewRegistry()
			d, in := newStages(b, cfg, reg)
			commits := func() float64 { return 0 }
			if mode == "redis" {
				srv := redistest.Start(b)
				client, err := quota.NewClient(srv.URL(), cfg.Redis.Timeout)
				if err != nil {
					b.Fatal(err)
				}
				defer client.Close()
				m := in.count.m
				shared, _ := quota.OpenShared(context.Background(), quota.NewRedis(client, cfg.Redis.RedisConfig), "bench",
					nil, cfg.Redis.MaxPending, m.sharedLedger(), discardLogger())
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				shared.Start(ctx)
				in.ledger.store = shared
				commits = func() float64 { return testutil.ToFloat64(m.ledgerCommits) }
			}
			start := time.Now()
			for b.Loop() {
				for i, batch := range batches {
					ingestSync(d, in, batch)
					// About one checkpoint per second of input at 250,000 lines a
					// second; with Redis its batch is committed meanwhile.
					if i%200 == 199 || i == len(batches)-1 {
						in.ledger.store.Saved(in.snapshot(time.Now()).quota)
					}
				}
				in.ledger.store.Drain(10 * time.Second)
			}
			b.ReportMetric(float64(lines)*float64(b.N)/time.Since(start).Seconds(), "lines/s")
			b.ReportMetric(commits()/float64(b.N), "commits/op")
		})
	}
}
