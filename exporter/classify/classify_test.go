package classify

import (
	"strings"
	"testing"
)

func TestCollapse(t *testing.T) {
	cases := map[string]string{
		"/api/v1/users/123":                                      "/api/v1/users/:id",
		"/api/v1/users/1234/usage?page=3":                        "/api/v1/users/:id/usage",
		"/api/v1/jobs/550e8400-e29b-41d4-a716-446655440000#frag": "/api/v1/jobs/:id",
		"/api/v1/files/9f86d081884c7d65":                         "/api/v1/files/:id",
		"/api/v1/users/admin@example.com/quota":                  "/api/v1/users/:id/quota",
		"/v1/responses/chatcmpl-9xYz12AbCdEfGhIjKl":              "/v1/responses/:id",
		"/api/v1/llm/chat/completions":                           "/api/v1/llm/chat/completions",
		"/v1/models/gpt-4":                                       "/v1/models/gpt-4",
		"/api/v1/embeddings/":                                    "/api/v1/embeddings/",
		"/deadbeef/facade":                                       "/deadbeef/facade",
		"/":                                                      "/",
		"?x=1":                                                   "",
	}
	for in, want := range cases {
		if got := string(Collapse(nil, []byte(in))); got != want {
			t.Errorf("Collapse(%q) = %q, want %q", in, got, want)
		}
	}
}

// Each service has its own route cap: a service with many routes folds
// its own into __other__ and leaves the others' alone.
func TestRouteServicesAndCap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRoutes = 2
	cfg.Services[2].MaxRoutes = 1 // search
	cfg.IgnorePaths = []string{"/healthz"}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc := func(r *Route) string { return c.Services()[r.Service] }
	long := "/api/v1/llm/" + strings.Repeat("abc/", 40)
	cases := []struct{ path, route, service string }{
		{"/api/v1/llm/chat/completions", "/api/v1/llm/chat/completions", "llm"},
		{long, HashLabel(long), "llm"}, // too long for a label: its hash
		// llm's cap is reached: its new routes fold, keeping their service...
		{"/api/v1/llm/completions", OverflowRoute, "llm"},
		// ...and the other services still get theirs.
		{"/api/v1/search/suggest?q=x", "/api/v1/search/suggest", "search"},
		{"/api/v1/searches", "/api/v1/searches", "other"},
		{"/api/v1/embeddings", "/api/v1/embeddings", "embeddings"},
		{"/api/v1/search/more", OverflowRoute, "search"}, // search's own cap is 1
		{"/api/v1/search/suggest?q=y", "/api/v1/search/suggest", "search"},
	}
	for _, tc := range cases {
		r := c.Route([]byte(tc.path))
		if r.Label != tc.route || svc(r) != tc.service || r.Overflow != (tc.route == OverflowRoute) {
			t.Errorf("Route(%q) = %q/%s overflow=%v, want %q/%s", tc.path, r.Label, svc(r), r.Overflow, tc.route, tc.service)
		}
	}
	if r := c.Route([]byte("/healthz")); !r.Ignored {
		t.Errorf("/healthz not ignored: %+v", r)
	}
	if i, ok := c.ServiceIndex([]byte("stt")); !ok || c.Services()[i] != "stt" {
		t.Errorf("ServiceIndex(stt) = %d, %v", i, ok)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.MaxRoutes = 0 }, "max_routes: must be at least 1"},
		{func(c *Config) { c.Services[1].Name = "" }, "services[1].name: must be a non-empty name"},
		{func(c *Config) { c.Services[2].Name = "llm" }, `services[2].name: service "llm" is defined twice`},
		{func(c *Config) { c.Services[0].Name = "other" }, `services[0].name: "other" is the service`},
		{func(c *Config) { c.Services[0].Prefixes = nil }, "services[0].prefixes: needs at least one"},
		{func(c *Config) { c.Services[3].Prefixes[0] = "api" }, `services[3].prefixes[0]: must start with /`},
		{func(c *Config) { c.IgnorePaths = []string{"x"} }, `ignore_paths[0]: must start with /`},
	}
	for _, tc := range cases {
		cfg := DefaultConfig()
		tc.mutate(&cfg)
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want prefix %q", err, tc.want)
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	c, _ := New(DefaultConfig())
	paths := [][]byte{[]byte("/api/v1/llm/chat/completions"), []byte("/api/v1/users/48213/usage?page=2")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Route(paths[i&1])
		i++
	}
}
