package litellm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
)

// Target is one configured place to scrape: a URL, or a DNS name whose
// every address is scraped (dns+http://name:port/path).
type Target struct {
	// Name is the target as configured.
	Name string
	// DNS is true for a dns+ target.
	DNS bool
	// Scheme is http or https; Host and Port where to connect (Port empty
	// for the scheme's default); Path the metrics path.
	Scheme, Host, Port, Path string
}

// ParseTarget reads a target: a base URL gets /metrics.
func ParseTarget(s string) (Target, error) {
	t := Target{Name: s}
	raw := s
	if rest, ok := strings.CutPrefix(s, "dns+"); ok {
		t.DNS, raw = true, rest
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return t, fmt.Errorf("must be an http(s) URL or dns+http(s)://name:port/path, not %q", s)
	}
	t.Scheme, t.Host, t.Port, t.Path = u.Scheme, u.Hostname(), u.Port(), u.EscapedPath()
	if t.Path == "" || t.Path == "/" {
		t.Path = "/metrics"
	}
	if u.RawQuery != "" {
		t.Path += "?" + u.RawQuery
	}
	if t.DNS && net.ParseIP(t.Host) != nil {
		return t, fmt.Errorf("dns+ needs a name to resolve, not the address %q", t.Host)
	}
	return t, nil
}

// HostPort is the host, with the port when one is given.
func (t Target) HostPort() string {
	if t.Port == "" {
		return t.Host
	}
	return net.JoinHostPort(t.Host, t.Port)
}

func (t Target) url(host string) string {
	if t.Port != "" {
		host = net.JoinHostPort(host, t.Port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return t.Scheme + "://" + host + t.Path
}

// Resolver looks up a name's addresses (net.DefaultResolver does).
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Endpoints are the URLs to scrape for the target: its own, or one per
// address its name resolves to, sorted.
func (t Target) Endpoints(ctx context.Context, r Resolver) ([]string, error) {
	if !t.DNS {
		return []string{t.url(t.Host)}, nil
	}
	addrs, err := r.LookupHost(ctx, t.Host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, errors.New("no addresses")
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, t.url(a))
	}
	sort.Strings(out)
	return out, nil
}
