package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReadAndLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]int
	if ok, err := d.Read("s.json", &v); ok || err != nil {
		t.Fatalf("Read of a missing file = %v, %v", ok, err)
	}
	if err := d.Write("s.json", map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.Write("s.json", map[string]int{"a": 2}); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Read("s.json", &v); !ok || err != nil || v["a"] != 2 {
		t.Fatalf("Read = %v, %v, %v", ok, err, v)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open = %v, want in-use error", err)
	}
	d.Close()
	d2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	d2.Close()
}

func TestReadCorrupt(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.WriteFile(filepath.Join(dir, "s.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	var v map[string]int
	if _, err := d.Read("s.json", &v); err == nil || !strings.Contains(err.Error(), "s.json") {
		t.Fatalf("Read of a corrupt file = %v, want an error naming the file", err)
	}
}
