package litellm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

type fakeDNS map[string][]string

func (f fakeDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestTargets(t *testing.T) {
	dns := fakeDNS{"litellm-headless.ai.svc": {"10.0.0.7", "10.0.0.5", "fd00::3"}, "empty": {}}
	cases := []struct {
		target string
		want   string // endpoints, or the error
	}{
		{"http://litellm:4000", "[http://litellm:4000/metrics]"},
		{"https://litellm.example.com/metrics/?x=1", "[https://litellm.example.com/metrics/?x=1]"},
		{"http://[fd00::1]:4000/", "[http://[fd00::1]:4000/metrics]"},
		{"dns+http://litellm-headless.ai.svc:4000", "[http://10.0.0.5:4000/metrics http://10.0.0.7:4000/metrics http://[fd00::3]:4000/metrics]"},
		{"dns+https://litellm-headless.ai.svc/custom", "[https://10.0.0.5/custom https://10.0.0.7/custom https://[fd00::3]/custom]"},
		{"dns+http://missing:4000", "error: no such host"},
		{"dns+http://empty:4000", "error: no addresses"},
	}
	for _, tc := range cases {
		target, err := ParseTarget(tc.target)
		if err != nil {
			t.Errorf("%s: %v", tc.target, err)
			continue
		}
		eps, err := target.Endpoints(context.Background(), dns)
		got := fmt.Sprint(eps)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.target, got, tc.want)
		}
	}
	for _, bad := range []string{"litellm:4000", "dns+ftp://x", "http://user:pw@x", "dns+http://10.1.1.1:4000", "http://"} {
		if _, err := ParseTarget(bad); err == nil || !strings.Contains(err.Error(), "dns+") {
			t.Errorf("%s: accepted (%v)", bad, err)
		}
	}
	cfg := Config{URL: "http://a:4000", Targets: []string{"http://a:4000", "dns+http://b:4000"}}
	if got := fmt.Sprint(cfg.AllTargets()); got != "[http://a:4000 dns+http://b:4000]" {
		t.Errorf("AllTargets %s", got)
	}
}
