package rollup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// dirFiles are Files in a directory, as the state directory keeps them.
type dirFiles string

func (d dirFiles) WriteBytes(name string, data []byte) error {
	return os.WriteFile(filepath.Join(string(d), name), data, 0o600)
}

func (d dirFiles) ReadBytes(name string) ([]byte, bool, error) {
	b, err := os.ReadFile(filepath.Join(string(d), name))
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	return b, err == nil, err
}

func (d dirFiles) Remove(name string) error { return os.Remove(filepath.Join(string(d), name)) }

func (d dirFiles) List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(string(d))
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, err
}

// BenchmarkNinetyDays fills 90 days of rollups of 10,000 users, each
// making 3 calls a day (on 200 routes of 5 services, 10 models, 4 tiers),
// sealing each day as the next begins; it reports the heap the rollups
// hold, the sealed files' size, the state file's part (the open day) and
// the time of a 90-day window.
func BenchmarkNinetyDays(b *testing.B) {
	const users, days, perDay = 10000, 90, 3
	dir := b.TempDir()
	var r *Rollups
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r = New(days, dirFiles(dir))
	services := []string{"llm", "embeddings", "search", "tts", "stt"}
	start := time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC)
	var open int
	for d := range days {
		for u := range users {
			for c := range perDay {
				i := u*perDay + c
				svc := services[i%5]
				l := Line{Time: start.Add(time.Duration(d)*24*time.Hour + time.Duration(i%86400)*time.Second).UnixMilli(),
					Service: r.ServiceID(svc), Route: r.RouteID(svc, fmt.Sprintf("/api/v1/%s/op%03d", svc, i%200)),
					Tier: r.TierID([]string{"trial", "starter", "professional", "enterprise"}[u%4]),
					User: r.UserID(fmt.Sprintf("user-%05d@example.com", u)), Model: -1, Unpriced: -1, Cost: 0.001,
					HasDuration: true, Duration: float64(1+i%3000) / 1000, Bytes: 2048}
				if svc == "llm" {
					l.Model = r.ModelID(svc, fmt.Sprintf("model-%d", i%10))
					l.HasTokens, l.Tokens, l.Prompt, l.UserTokens = true, [5]float64{float64(100 + i%5000), 200}, int64(100+i%5000), 300
				}
				r.Add(&l)
			}
		}
		s := r.Checkpoint()
		open = len(s.Encode())
		r.Saved(s)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var sealed int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			sealed += info.Size()
		}
	}
	b.ResetTimer()
	for b.Loop() {
		w, err := r.Window(context.Background(), days)
		if err != nil || len(w.Users) != users {
			b.Fatalf("%v, %d users", err, len(w.Users))
		}
	}
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/1e6, "heap-MB")
	b.ReportMetric(float64(sealed)/1e6, "sealed-MB")
	b.ReportMetric(float64(open)/1e6, "state-MB")
	b.ReportMetric(float64(len(entries)), "files")
}
