package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Dockerfile's build step (scripts/build-static.sh, which `make build`
// runs too) makes static binaries with CGO off and a version and revision
// (usage_exporter_build_info would show them empty otherwise).
func TestStaticBuildWithVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both commands")
	}
	out := t.TempDir()
	cmd := exec.Command("../../scripts/build-static.sh", out)
	cmd.Env = append(os.Environ(), "VERSION=1.2.3-test", "REVISION=abc123", "BRANCH=test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	for _, name := range []string{"usage-exporter", "usage-optimizer", "usage-demo"} {
		bin := filepath.Join(out, name)
		info, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(info), "CGO_ENABLED=0") || !strings.Contains(string(info), "-trimpath=true") {
			t.Errorf("%s not built static:\n%s", name, info)
		}
		if file, err := exec.LookPath("file"); err == nil {
			if desc, _ := exec.Command(file, bin).Output(); !strings.Contains(string(desc), "statically linked") {
				t.Errorf("%s: %s", name, desc)
			}
		}
		if name == "usage-demo" {
			continue
		}
		v, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v", name, err)
		}
		if !strings.Contains(string(v), "version 1.2.3-test (branch: test, revision: abc123)") {
			t.Errorf("%s --version: %s", name, v)
		}
	}
}
