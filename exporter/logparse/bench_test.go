package logparse

import (
	"encoding/json"
	"testing"
)

var (
	benchJSONLine  = []byte(`{"timestamp":"2025-10-24T00:00:00.004Z","user_id":"user_022","method":"POST","path":"/api/v1/llm/chat/completions","status":200,"duration_ms":1716.2,"size":2557,"ip_address":"10.20.9.241","user_agent":"python-requests/2.31.0","service":"llm"}`)
	benchNginxLine = []byte(`10.20.9.241 - user_022 [24/Oct/2025:00:00:00 +0000] "POST /api/v1/llm/chat/completions HTTP/1.1" 200 2557 "-" "python-requests/2.31.0" 1.716`)
)

// Parsers run once per log line: always report allocations.
func BenchmarkParseJSON(b *testing.B) {
	p := mustNew(b, DefaultConfig())
	var rec Record
	b.ReportAllocs()
	b.SetBytes(int64(len(benchJSONLine)))
	for b.Loop() {
		if err := p.Parse(benchJSONLine, &rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseNginx(b *testing.B) {
	p := mustNew(b, Config{Format: "nginx"})
	var rec Record
	b.ReportAllocs()
	b.SetBytes(int64(len(benchNginxLine)))
	for b.Loop() {
		if err := p.Parse(benchNginxLine, &rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingJSON is the reflective baseline the hand-written parser replaces.
func BenchmarkEncodingJSON(b *testing.B) {
	var v struct {
		Timestamp  string  `json:"timestamp"`
		UserID     string  `json:"user_id"`
		Method     string  `json:"method"`
		Path       string  `json:"path"`
		Status     int     `json:"status"`
		DurationMs float64 `json:"duration_ms"`
		Size       int64   `json:"size"`
		IP         string  `json:"ip_address"`
		UA         string  `json:"user_agent"`
		Service    string  `json:"service"`
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchJSONLine)))
	for b.Loop() {
		if err := json.Unmarshal(benchJSONLine, &v); err != nil {
			b.Fatal(err)
		}
	}
}
