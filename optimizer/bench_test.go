package optimizer

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// bigWeek is the fixture week with 10,000 users and 200 models, the
// exporter's default caps.
func bigWeek() *Snapshot {
	s := week()
	for i := 0; i < 10000; i++ {
		u := s.user(fmt.Sprintf("user%05d@example.com", i), []string{"trial", "starter", "professional", "enterprise"}[i%4])
		u.Calls, u.Cost, u.Tokens = float64(100+i%500), float64(i%50), float64(1000*i)
		u.ByService["llm"], u.ByService["search"] = u.Calls/2, u.Calls/2
		s.Quotas = append(s.Quotas, quotaUser(fmt.Sprintf("user%05d@example.com", i), u.Tier, u.Calls*3, u.Tokens*3))
	}
	for i := 0; i < 200; i++ {
		m := s.model(fmt.Sprintf("model-%d", i))
		m.Calls, m.Cost = float64(1000+i), float64(i)
		m.Tokens["input"], m.Tokens["output"] = 1e6, 1e5
		m.PromptTokens = map[float64]float64{500: 600, 2000: 900, math.Inf(1): 1000}
	}
	return s
}

// BenchmarkAnalysis is one run's work after the queries: recommendations
// and the eight views.
func BenchmarkAnalysis(b *testing.B) {
	st := mustSettings(b)
	snap := bigWeek()
	b.ReportAllocs()
	for b.Loop() {
		res := Recommend(snap, st.Prices, st.Config.Plans, *st.Config, now)
		NewReport(snap, res, st.Config.Plans, now)
	}
}

// BenchmarkExporterSource reads an exposition of 10,000 users from an
// exporter over HTTP.
func BenchmarkExporterSource(b *testing.B) {
	var buf bytes.Buffer
	for i := 0; i < 10000; i++ {
		for _, svc := range []string{"llm", "search", "embeddings"} {
			fmt.Fprintf(&buf, "usage_user_requests_total{api_service=%q,tier=\"starter\",user=\"user%05d@example.com\"} %d\n", svc, i, i)
			fmt.Fprintf(&buf, "usage_user_cost_dollars_total{api_service=%q,tier=\"starter\",user=\"user%05d@example.com\"} %d\n", svc, i, i)
		}
		fmt.Fprintf(&buf, "usage_quota_used{resource=\"calls\",tier=\"starter\",user=\"user%05d@example.com\"} %d\n", i, i)
	}
	body := buf.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) }))
	defer srv.Close()
	src := &ExporterSource{URL: srv.URL}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := src.Snapshot(context.Background(), 7, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
