// Package classify maps a request path to an api_service and a route label
// with bounded cardinality: ids collapse to ":id", query strings go, and
// routes beyond a cap fold into one overflow route per service.
package classify

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// OtherService is the api_service of paths no rule matches.
const OtherService = "other"

// OverflowRoute is the route label of paths beyond the route cap.
const OverflowRoute = "__other__"

// ServiceRule assigns an api_service to paths under any of its prefixes.
// A prefix matches at a segment boundary: /api/v1/search matches
// /api/v1/search and /api/v1/search/suggest, not /api/v1/searches.
type ServiceRule struct {
	Name     string   `yaml:"name"`
	Prefixes []string `yaml:"prefixes"`
	// MaxRoutes caps this service's routes; 0 takes Config.MaxRoutes.
	MaxRoutes int `yaml:"max_routes,omitempty"`
}

// Config configures a Classifier.
type Config struct {
	// Services are tried in order; the first matching rule wins.
	Services []ServiceRule `yaml:"services"`
	// MaxRoutes caps distinct route labels per service; further routes of
	// the service fold into its __other__ route, so that one noisy service
	// cannot take the routes of the others.
	MaxRoutes int `yaml:"max_routes"`
	// MaxRouteBytes: a longer route label is replaced by a hash of it (the
	// exporter sets it from labels.max_bytes).
	MaxRouteBytes int `yaml:"-"`
	// IgnorePaths are path prefixes whose lines are counted as filtered and not measured.
	IgnorePaths []string `yaml:"ignore_paths,omitempty"`
}

// DefaultConfig holds the gateway's services, with the OpenAI-style paths a
// LiteLLM proxy serves.
func DefaultConfig() Config {
	return Config{
		Services: []ServiceRule{
			{Name: "llm", Prefixes: []string{"/api/v1/llm/", "/v1/chat/completions", "/v1/completions", "/chat/completions"}},
			{Name: "embeddings", Prefixes: []string{"/api/v1/embeddings", "/v1/embeddings", "/embeddings"}},
			{Name: "search", Prefixes: []string{"/api/v1/search"}},
			{Name: "tts", Prefixes: []string{"/api/v1/tts", "/v1/audio/speech"}},
			{Name: "stt", Prefixes: []string{"/api/v1/stt", "/v1/audio/transcriptions", "/v1/audio/translations"}},
		},
		MaxRoutes:     500,
		MaxRouteBytes: 128,
	}
}

// Validate checks names, prefixes and the cap.
func (c Config) Validate() error {
	if c.MaxRoutes < 1 {
		return fielderr.New("max_routes", "must be at least 1, not %d", c.MaxRoutes)
	}
	if c.MaxRouteBytes < 16 {
		return fielderr.New("max_route_bytes", "must be at least 16, not %d", c.MaxRouteBytes)
	}
	seen := map[string]bool{}
	for i, s := range c.Services {
		path := "services[" + strconv.Itoa(i) + "]"
		if s.Name == "" || !fielderr.ValidName(s.Name) {
			return fielderr.New(path+".name", "must be a non-empty name of letters, digits, '-' or '_', not %q", s.Name)
		}
		if s.Name == OtherService {
			return fielderr.New(path+".name", "%q is the service of unmatched paths and cannot have rules", OtherService)
		}
		if seen[s.Name] {
			return fielderr.New(path+".name", "service %q is defined twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Prefixes) == 0 {
			return fielderr.New(path+".prefixes", "needs at least one path prefix")
		}
		if s.MaxRoutes < 0 {
			return fielderr.New(path+".max_routes", "must not be negative")
		}
		for j, p := range s.Prefixes {
			if !strings.HasPrefix(p, "/") {
				return fielderr.New(path+".prefixes["+strconv.Itoa(j)+"]", "must start with /, not %q", p)
			}
		}
	}
	if len(c.Services) > maxServices-1 {
		return fielderr.New("services", "at most %d services, not %d", maxServices-1, len(c.Services))
	}
	for j, p := range c.IgnorePaths {
		if !strings.HasPrefix(p, "/") {
			return fielderr.New("ignore_paths["+strconv.Itoa(j)+"]", "must start with /, not %q", p)
		}
	}
	return nil
}

// maxServices bounds the services so that indexes fit fixed arrays.
const maxServices = 32

// Route is the classification of one distinct collapsed path.
type Route struct {
	Label    string // collapsed path, or OverflowRoute
	Service  int    // index into Classifier.Services
	Ignored  bool   // under an ignore_paths prefix
	Overflow bool   // folded because of the route cap
}

var ignoredRoute = &Route{Label: "", Ignored: true}

// Classifier is not safe for concurrent use: one per ingest loop.
type Classifier struct {
	services []string // rule names, then OtherService
	rules    []prefixRule
	ignore   []string
	max      []int // route cap by service
	count    []int // routes by service
	maxBytes int
	routes   map[string]*Route // by collapsed path
	raw      map[string]*Route // by path as logged, without its query: skips collapsing
	overflow []*Route          // one per service
	scratch  []byte
}

type prefixRule struct {
	prefix  string
	service int
}

// New builds a Classifier; cfg must be valid.
func New(cfg Config) (*Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Classifier{maxBytes: cfg.MaxRouteBytes, routes: make(map[string]*Route), raw: make(map[string]*Route),
		ignore: cfg.IgnorePaths, scratch: make([]byte, 0, 256)}
	for i, s := range cfg.Services {
		c.services = append(c.services, s.Name)
		c.max = append(c.max, cmp.Or(s.MaxRoutes, cfg.MaxRoutes))
		for _, p := range s.Prefixes {
			c.rules = append(c.rules, prefixRule{prefix: p, service: i})
		}
	}
	c.services = append(c.services, OtherService)
	c.max = append(c.max, cfg.MaxRoutes)
	c.count = make([]int, len(c.services))
	for i := range c.services {
		c.overflow = append(c.overflow, &Route{Label: OverflowRoute, Service: i, Overflow: true})
	}
	return c, nil
}

// Services returns the api_service names; the last is OtherService.
func (c *Classifier) Services() []string { return c.services }

// ServiceIndex finds a service by name, for lines that name their service.
func (c *Classifier) ServiceIndex(name []byte) (int, bool) {
	for i, s := range c.services {
		if s == string(name) {
			return i, true
		}
	}
	return 0, false
}

// maxRawPaths bounds the cache of paths as logged.
const maxRawPaths = 8192

// Route classifies a request path. It allocates only for a new route, and
// for the first sightings of a path while the raw-path cache has room.
func (c *Classifier) Route(path []byte) *Route {
	for i, ch := range path {
		if ch == '?' || ch == '#' {
			path = path[:i]
			break
		}
	}
	if r, ok := c.raw[string(path)]; ok {
		return r
	}
	r := c.route(path)
	if len(c.raw) < maxRawPaths {
		c.raw[string(path)] = r
	}
	return r
}

func (c *Classifier) route(path []byte) *Route {
	c.scratch = Collapse(c.scratch[:0], path)
	if r, ok := c.routes[string(c.scratch)]; ok {
		return r
	}
	if c.ignored(c.scratch) {
		return ignoredRoute
	}
	svc := c.match(c.scratch)
	if c.count[svc] >= c.max[svc] {
		return c.overflow[svc]
	}
	c.count[svc]++
	r := &Route{Label: string(c.scratch), Service: svc}
	c.routes[r.Label] = r
	if len(r.Label) > c.maxBytes {
		// A route no API has: keep it apart, but not as a huge label value.
		r.Label = HashLabel(r.Label)
	}
	return r
}

func (c *Classifier) match(path []byte) int {
	for _, r := range c.rules {
		if hasSegmentPrefix(path, r.prefix) {
			return r.service
		}
	}
	return len(c.services) - 1
}

func (c *Classifier) ignored(path []byte) bool {
	for _, p := range c.ignore {
		if hasSegmentPrefix(path, p) {
			return true
		}
	}
	return false
}

func hasSegmentPrefix(path []byte, prefix string) bool {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// HashLabel stands for a label value too long to expose: "hash:" and 16
// hex digits of its SHA-256.
func HashLabel(v string) string {
	sum := sha256.Sum256([]byte(v))
	return "hash:" + hex.EncodeToString(sum[:8])
}

// Collapse appends to dst the route of path: the query string and fragment
// dropped, and every id-like segment replaced by ":id".
func Collapse(dst, path []byte) []byte {
	for i, ch := range path {
		if ch == '?' || ch == '#' {
			path = path[:i]
			break
		}
	}
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		seg := path[start:i]
		if isID(seg) {
			dst = append(dst, ":id"...)
		} else {
			dst = append(dst, seg...)
		}
		if i < len(path) {
			dst = append(dst, '/')
		}
		start = i + 1
	}
	return dst
}

// isID reports whether a path segment looks like an identifier rather than
// a fixed part of the API: a number, a UUID, a hex token, an e-mail address,
// or a long token that mixes letters and digits.
func isID(seg []byte) bool {
	if len(seg) == 0 {
		return false
	}
	digits, hex, at := 0, 0, false
	for _, ch := range seg {
		switch {
		case ch >= '0' && ch <= '9':
			digits++
			hex++
		case (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'):
			hex++
		case ch == '@':
			at = true
		}
	}
	switch {
	case digits == len(seg):
		return true
	case at:
		return true
	case len(seg) == 36 && seg[8] == '-' && seg[13] == '-' && seg[18] == '-' && seg[23] == '-' && hex == 32:
		return true
	case hex == len(seg) && len(seg) >= 8 && digits > 0:
		return true
	case len(seg) >= 20 && digits > 0:
		return true
	}
	return false
}
