package logparse

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// checkInvariants is the property every accepted line must satisfy: the
// values are in range and every label-bound field is valid UTF-8.
func checkInvariants(t *testing.T, line []byte, rec *Record) {
	t.Helper()
	if rec.Status < 100 || rec.Status > 599 {
		t.Fatalf("accepted %q with status %d", line, rec.Status)
	}
	if len(rec.Path) == 0 {
		t.Fatalf("accepted %q without a path", line)
	}
	if rec.HasDuration && !(rec.Duration >= 0 && rec.Duration <= maxDuration) {
		t.Fatalf("accepted %q with duration %v", line, rec.Duration)
	}
	if rec.Size < 0 || rec.InputTokens < 0 || rec.OutputTokens < 0 {
		t.Fatalf("accepted %q with negative counts %+v", line, rec)
	}
	for _, b := range [][]byte{rec.Method, rec.Path, rec.User, rec.Service, rec.Model, rec.Tier, rec.Org} {
		if !utf8.Valid(b) || bytes.ContainsAny(b, "\x00\n\r\t") {
			t.Fatalf("accepted %q with label bytes %q", line, b)
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"timestamp":"2025-10-24T14:32:15.250Z","user_id":"u1","method":"POST","path":"/api/v1/llm/chat/completions","status":200,"duration_ms":850.5,"size":1024}`))
	f.Add([]byte(`{"path":"/a\u00e9\ud83d\ude00","status":"200","x":[{"y":null},true,false,-1.5e3]}`))
	f.Add([]byte(`{"path":"/a","status":200,"user_id":12,"cost":0.06,"prompt_tokens":1000}`))
	p := mustNew(f, DefaultConfig())
	f.Fuzz(func(t *testing.T, line []byte) {
		var rec Record
		err := p.Parse(line, &rec)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		checkInvariants(t, line, &rec)
		// Differential check against encoding/json where the line is valid
		// JSON and "path" is unambiguous (encoding/json keeps the last duplicate).
		if json.Valid(line) && bytes.Count(line, []byte(`"path"`)) == 1 {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err == nil {
				if s, ok := m["path"].(string); ok && utf8.ValidString(s) && s != string(rec.Path) {
					t.Fatalf("path %q, encoding/json says %q for %q", rec.Path, s, line)
				}
			}
		}
	})
}

func FuzzParseNginx(f *testing.F) {
	f.Add([]byte(`192.168.1.100 - - [24/Oct/2025:14:32:15 +0000] "POST /api/v1/llm/chat/completions HTTP/1.1" 200 1024 "-" "Mozilla/5.0..." 0.850`))
	f.Add([]byte(`10.20.9.241 - user_022 [24/Oct/2025:00:00:00 +0000] "GET /api/v1/users/1234/usage?page=3 HTTP/1.1" 404 0 "-" "curl/8.5.0" 60.000`))
	p := mustNew(f, Config{Format: "nginx"})
	// The same format matched forwards only, without skipping unread fields.
	forward := mustNew(f, Config{Format: "nginx"}).(*nginxParser)
	forward.left, forward.right = len(forward.tokens), len(forward.tokens)
	f.Fuzz(func(t *testing.T, line []byte) {
		var rec, rec2 Record
		if err := p.Parse(line, &rec); err != nil {
			return
		}
		checkInvariants(t, line, &rec)
		if forward.Parse(line, &rec2) == nil {
			if string(rec.Path) != string(rec2.Path) || string(rec.User) != string(rec2.User) || rec.Status != rec2.Status ||
				rec.Size != rec2.Size || rec.Duration != rec2.Duration || !rec.Time.Equal(rec2.Time) {
				t.Fatalf("skipping and forward parses differ on %q:\n%+v\n%+v", line, rec, rec2)
			}
		}
	})
}
