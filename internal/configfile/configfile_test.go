package configfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

type sample struct {
	Name  string        `yaml:"name"`
	Every time.Duration `yaml:"every"`
	Items []struct {
		Size int `yaml:"size"`
	} `yaml:"items"`
}

func (s *sample) Validate() error {
	for i, it := range s.Items {
		if it.Size < 0 {
			return fielderr.Under("items", fielderr.New("["+string(rune('0'+i))+"].size", "must not be negative"))
		}
	}
	return nil
}

func TestParseKeepsDefaultsAndNamesLines(t *testing.T) {
	s := &sample{Name: "default", Every: time.Second}
	if err := Parse([]byte("every: 2s\n"), s); err != nil || s.Name != "default" || s.Every != 2*time.Second {
		t.Fatalf("Parse = %v, %+v", err, s)
	}
	err := Parse([]byte("items:\n  - size: 1\n  - size: -3\n"), &sample{})
	var fe *fielderr.Error
	if err == nil || err.Error() != "line 3: items[1].size: must not be negative" || !errors.As(err, &fe) {
		t.Errorf("validation error %v: want the line and the field, with the chain kept", err)
	}
	if err := Parse([]byte("nmae: x\n"), &sample{}); err == nil || !strings.Contains(err.Error(), "line 1: field nmae not found") {
		t.Errorf("unknown key: %v", err)
	}
	if err := Parse([]byte("name: [\n"), &sample{}); err == nil || !strings.HasPrefix(err.Error(), "line ") {
		t.Errorf("syntax error: %v", err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yml")
	if err := os.WriteFile(path, []byte("every: soon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Load(path, &sample{}); err == nil || !strings.HasPrefix(err.Error(), path+": line 1: ") {
		t.Errorf("Load = %v", err)
	}
	if err := Load(filepath.Join(t.TempDir(), "missing.yml"), &sample{}); err == nil {
		t.Error("missing file accepted")
	}
}
