package logparse

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustNew(t testing.TB, c Config) Parser {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	return p
}

// want is the subset of a Record a test case checks; strings compare as text.
type want struct {
	time                          string
	method, path, user            string
	status                        int
	duration                      float64
	hasDuration                   bool
	size                          int64
	service, model, tier, key     string
	in, out, cacheRead, reasoning int64
	cost                          float64
	hasCost                       bool
}

func check(t *testing.T, rec *Record, w want) {
	t.Helper()
	gotTime := ""
	if !rec.Time.IsZero() {
		gotTime = rec.Time.UTC().Format(time.RFC3339Nano)
	}
	got := want{
		time: gotTime, method: string(rec.Method), path: string(rec.Path), user: string(rec.User),
		status: rec.Status, duration: rec.Duration, hasDuration: rec.HasDuration, size: rec.Size,
		service: string(rec.Service), model: string(rec.Model), tier: string(rec.Tier), key: string(rec.CacheKey),
		in: rec.InputTokens, out: rec.OutputTokens, cacheRead: rec.CacheReadTokens, reasoning: rec.ReasoningTokens,
		cost: rec.Cost, hasCost: rec.HasCost,
	}
	if got != w {
		t.Errorf("record mismatch\n got %+v\nwant %+v", got, w)
	}
}

func TestJSONParse(t *testing.T) {
	p := mustNew(t, DefaultConfig())
	cases := []struct {
		name string
		line string
		want want
	}{
		{
			name: "gateway line",
			line: `{"timestamp":"2025-10-24T14:32:15.250Z","user_id":"admin@example.com","method":"POST","path":"/api/v1/llm/chat/completions","status":200,"duration_ms":850.5,"size":1024,"ip_address":"192.168.1.100","user_agent":"Mozilla/5.0","service":"llm"}`,
			want: want{time: "2025-10-24T14:32:15.25Z", method: "POST", path: "/api/v1/llm/chat/completions", user: "admin@example.com",
				status: 200, duration: 0.8505, hasDuration: true, size: 1024, service: "llm"},
		},
		{
			name: "optional fields, aliases, escapes and unknown nested values",
			line: ` { "time" : "2025-10-24 14:32:15" , "user_id" : "u\u00e9\"1", "method":"POST", "path":"/api/v1/llm/chat/completions",
				"status":"201", "duration_ms": 1e3, "size": 10, "model":"gpt-4", "prompt_tokens": 1000, "completion_tokens":500,
				"cached_tokens": 200, "reasoning_tokens": 7, "cost": 0.06, "tier":"professional", "request_hash":"abc",
				"extra": {"a":[1,2,{"b":null}],"c":"\\\""}, "flag": true }`,
			want: want{time: "2025-10-24T14:32:15Z", method: "POST", path: "/api/v1/llm/chat/completions", user: "ué\"1",
				status: 201, duration: 1, hasDuration: true, size: 10, model: "gpt-4", in: 1000, out: 500, cacheRead: 200,
				reasoning: 7, cost: 0.06, hasCost: true, tier: "professional", key: "abc"},
		},
		{
			name: "preferred alias wins whatever the order; null user is anonymous; epoch ms",
			line: `{"prompt_tokens":1,"input_tokens":2,"user_id":null,"timestamp":1761316335250,"path":"/x","status":404,"method":"GET"}`,
			want: want{time: "2025-10-24T14:32:15.25Z", method: "GET", path: "/x", status: 404, in: 2},
		},
		{
			name: "numeric user id and offset timestamp",
			line: `{"timestamp":"2025-10-24T16:32:15+02:00","user_id":12345,"path":"/y","status":500,"duration_ms":0}`,
			want: want{time: "2025-10-24T14:32:15Z", path: "/y", user: "12345", status: 500, hasDuration: true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rec Record
			if err := p.Parse([]byte(tc.line), &rec); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			check(t, &rec, tc.want)
		})
	}
}

func TestJSONReject(t *testing.T) {
	p := mustNew(t, DefaultConfig())
	ok := `"path":"/a","status":200`
	cases := []struct {
		line   string
		reason Reason
	}{
		{``, ReasonSyntax},
		{`   `, ReasonSyntax},
		{`[1,2]`, ReasonSyntax},
		{`{` + ok, ReasonSyntax},
		{`{` + ok + `}}`, ReasonSyntax},
		{`{` + ok + `} x`, ReasonSyntax},
		{`{"path":"/a","status":200,"x":{"y":[1,2}]}`, ReasonSyntax},
		{`{"path":"/a","status":200,"x":"unterminated}`, ReasonSyntax},
		{`{"path":"/a\x01","status":200}`, ReasonSyntax},
		{`{"path":"/a","status":200,"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, ReasonSyntax},
		{"{\"path\":\"/a\",\"status\":200,\"user_id\":\"\xff\xfe\"}", ReasonEncoding},
		{`{"path":"/a","status":200,"user_id":"a\nb"}`, ReasonEncoding},
		{`{"status":200}`, ReasonMissing},
		{`{"path":"/a"}`, ReasonMissing},
		{`{"path":"/a","status":42}`, ReasonValue},
		{`{"path":"/a","status":"abc"}`, ReasonValue},
		{`{"path":"/a","status":200,"duration_ms":-5}`, ReasonValue},
		{`{"path":"/a","status":200,"duration_ms":1e12}`, ReasonValue},
		{`{"path":"/a","status":200,"size":-1}`, ReasonValue},
		{`{"path":"/a","status":200,"input_tokens":-1}`, ReasonValue},
		{`{"path":"/a","status":200,"cost":-0.5}`, ReasonValue},
		{`{"path":"/a","status":200,"timestamp":"yesterday"}`, ReasonValue},
		{`{"path":"/a","status":200,"model":{"name":"gpt-4"}}`, ReasonValue},
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ReasonSyntax},
	}
	for _, tc := range cases {
		var rec Record
		err := p.Parse([]byte(tc.line), &rec)
		if err == nil {
			t.Errorf("Parse(%q) accepted: %+v", tc.line, rec)
			continue
		}
		if got := ReasonOf(err); got != tc.reason {
			t.Errorf("Parse(%q): reason %s (%v), want %s", tc.line, got, err, tc.reason)
		}
	}
}

func TestJSONFieldMapping(t *testing.T) {
	p := mustNew(t, Config{Format: "json", Fields: map[string][]string{"user_id": {"uid", "email"}, "duration_seconds": {"rt"}}})
	var rec Record
	if err := p.Parse([]byte(`{"email":"e@x","uid":"u1","user_id":"ignored","path":"/p","status":200,"rt":0.25}`), &rec); err != nil {
		t.Fatal(err)
	}
	check(t, &rec, want{path: "/p", user: "u1", status: 200, duration: 0.25, hasDuration: true})
}

func TestNginxParse(t *testing.T) {
	p := mustNew(t, Config{Format: "nginx"})
	cases := []struct {
		line string
		want want
	}{
		{
			`192.168.1.100 - - [24/Oct/2025:14:32:15 +0000] "POST /api/v1/llm/chat/completions HTTP/1.1" 200 1024 "-" "Mozilla/5.0..." 0.850`,
			want{time: "2025-10-24T14:32:15Z", method: "POST", path: "/api/v1/llm/chat/completions", status: 200, size: 1024,
				duration: 0.85, hasDuration: true},
		},
		{
			`10.20.9.241 - user_022 [24/Oct/2025:16:00:00 +0200] "GET /api/v1/users/1234/usage?page=3 HTTP/1.1" 404 0 "https://x/" "curl/8.5.0" 0.004` + "\r",
			want{time: "2025-10-24T14:00:00Z", method: "GET", path: "/api/v1/users/1234/usage?page=3", user: "user_022",
				status: 404, duration: 0.004, hasDuration: true},
		},
	}
	for _, tc := range cases {
		var rec Record
		if err := p.Parse([]byte(tc.line), &rec); err != nil {
			t.Fatalf("Parse(%q): %v", tc.line, err)
		}
		check(t, &rec, tc.want)
	}
}

func TestNginxCustomFormat(t *testing.T) {
	p := mustNew(t, Config{
		Format:      "nginx",
		NginxFormat: `$remote_addr [$time_iso8601] "$request_method $request_uri" $status $bytes_sent $request_time "$http_x_user_id" "$http_x_tier" $upstream_response_time`,
		Fields:      map[string][]string{"user_id": {"http_x_user_id"}, "tier": {"http_x_tier"}},
	})
	var rec Record
	line := `10.0.0.1 [2025-10-24T14:32:15+00:00] "GET /v1/models" 200 512 0.010 "cust_1042" "starter" 0.009, 0.001`
	if err := p.Parse([]byte(line), &rec); err != nil {
		t.Fatal(err)
	}
	check(t, &rec, want{time: "2025-10-24T14:32:15Z", method: "GET", path: "/v1/models", user: "cust_1042", tier: "starter",
		status: 200, size: 512, duration: 0.01, hasDuration: true})
}

func TestNginxReject(t *testing.T) {
	p := mustNew(t, Config{Format: "nginx"})
	good := `1.2.3.4 - - [24/Oct/2025:14:32:15 +0000] "GET /a HTTP/1.1" 200 1 "-" "ua" 0.1`
	cases := []struct {
		line   string
		reason Reason
	}{
		{``, ReasonSyntax},
		{`garbage`, ReasonSyntax},
		{good[:40], ReasonSyntax},
		// Text after the last variable is not in the format: a format mismatch,
		// as the runbook says (it was "value" before).
		{good + ` trailing`, ReasonSyntax},
		{strings.Replace(good, `"GET /a HTTP/1.1"`, `"-"`, 1), ReasonSyntax},
		{strings.Replace(good, "24/Oct/2025", "24/Foo/2025", 1), ReasonValue},
		{strings.Replace(good, " 200 ", " 2x0 ", 1), ReasonValue},
		{strings.Replace(good, " 200 ", " 700 ", 1), ReasonValue},
		{strings.Replace(good, "0.1", "-3", 1), ReasonValue},
		{strings.Replace(good, "0.1", "999999", 1), ReasonValue},
		{strings.Replace(good, "- - [", "- \xff\xfe [", 1), ReasonEncoding},
	}
	for _, tc := range cases {
		var rec Record
		err := p.Parse([]byte(tc.line), &rec)
		if err == nil {
			t.Errorf("Parse(%q) accepted", tc.line)
			continue
		}
		if got := ReasonOf(err); got != tc.reason {
			t.Errorf("Parse(%q): reason %s (%v), want %s", tc.line, got, err, tc.reason)
		}
	}
}

// A stock "combined" line read with the default format, which expects
// $request_time after the user agent, is a syntax error naming the
// variable: it was a value error, which the runbook tells apart from a
// wrong format.
func TestCombinedLineWithDefaultFormat(t *testing.T) {
	p := mustNew(t, Config{Format: "nginx"})
	combined := `10.0.0.1 - alice [24/Oct/2025:14:32:15 +0000] "POST /api/v1/llm/chat/completions HTTP/1.1" 200 1024 "-" "Mozilla/5.0 (X11; Linux x86_64)"`
	var rec Record
	err := p.Parse([]byte(combined), &rec)
	if ReasonOf(err) != ReasonSyntax || !strings.Contains(fmt.Sprint(err), "$request_time") {
		t.Errorf("combined line: %v, want a syntax error naming $request_time", err)
	}
	// The same line read with the combined format parses.
	p = mustNew(t, Config{Format: "nginx", NginxFormat: `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`})
	if err := p.Parse([]byte(combined), &rec); err != nil || string(rec.User) != "alice" {
		t.Errorf("with the combined format: %v %q", err, rec.User)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Format: "xml"}, `format: must be one of json, nginx, not "xml"`},
		{Config{Format: "json", NginxFormat: "$x"}, "nginx_format: only valid with format nginx"},
		{Config{Format: "nginx", NginxFormat: "$status$request"}, "nginx_format: variables $status and $request have no text between them"},
		{Config{Format: "nginx", NginxFormat: "$remote_addr $status"}, "nginx_format: has no $request, $request_uri or $uri: the path is required"},
		{Config{Format: "nginx", NginxFormat: `"$request"`}, "nginx_format: has no $status"},
		{Config{Format: "json", Fields: map[string][]string{"usr": {"x"}}}, "fields.usr: unknown field"},
		{Config{Format: "json", Timezone: "Mars/Olympus"}, `timezone: unknown time zone "Mars/Olympus"`},
	}
	for _, tc := range cases {
		_, err := New(tc.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want prefix %q", tc.cfg, err, tc.want)
		}
	}
}

func TestParseFloatMatchesStrconv(t *testing.T) {
	inputs := []string{"0", "1", "-1", "0.1", "850.5", "0.000123", "123456789012345", "1234567890123456",
		"0.0000000000000000000001", "1e3", "2.5E-3", "0.06", "60.000", "3.14159265358979", "00012.50", "-0.0"}
	for _, in := range inputs {
		got, ok := parseFloat([]byte(in))
		want, err := strconv.ParseFloat(in, 64)
		if !ok || err != nil || got != want {
			t.Errorf("parseFloat(%q) = %v, %v; strconv gives %v, %v", in, got, ok, want, err)
		}
	}
	for _, bad := range []string{"", "-", ".", "1.2.3", "abc", "1e", "NaN", "Inf"} {
		if v, ok := parseFloat([]byte(bad)); ok {
			t.Errorf("parseFloat(%q) accepted as %v", bad, v)
		}
	}
	if _, ok := parseInt([]byte("99999999999999999999")); ok {
		t.Error("parseInt accepted an overflowing value")
	}
}

func TestTimeParsingMatchesStdlib(t *testing.T) {
	for _, s := range []string{"2025-10-24T14:32:15Z", "2025-10-24T14:32:15.123456789Z", "2000-02-29T23:59:59-07:30",
		"1970-01-01T00:00:00Z", "2038-01-19T03:14:08+00:00", "1969-12-31T23:59:59Z"} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseISO8601([]byte(s), time.UTC)
		if !ok || !got.Equal(want) {
			t.Errorf("parseISO8601(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	got, ok := parseNginxTime([]byte("29/Feb/2024:23:59:59 -0700"))
	want := time.Date(2024, 3, 1, 6, 59, 59, 0, time.UTC)
	if !ok || !got.Equal(want) {
		t.Errorf("parseNginxTime = %v, %v; want %v", got, ok, want)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	got, ok = parseISO8601([]byte("2025-10-24T14:32:15"), berlin)
	if !ok || !got.Equal(time.Date(2025, 10, 24, 12, 32, 15, 0, time.UTC)) {
		t.Errorf("zone-less time in Berlin = %v", got)
	}
	if _, ok := epochTime(math.Inf(1)); ok {
		t.Error("epochTime accepted +Inf")
	}
}
