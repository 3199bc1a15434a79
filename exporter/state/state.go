// Package state keeps the exporter's durable state in one JSON file that is
// replaced atomically (write a temporary file, fsync, rename, fsync the
// directory), so that a crash leaves either the old state or the new one.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Dir is a state directory held by one process.
type Dir struct {
	path string
	lock *os.File
}

// Open creates dir if needed and takes an exclusive lock on it, so that two
// exporters cannot overwrite each other's checkpoints.
func Open(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s is in use by another process", dir)
		}
		return nil, fmt.Errorf("state directory %s: lock: %w", dir, err)
	}
	return &Dir{path: dir, lock: lf}, nil
}

// OpenReadOnly opens dir for reading, without the lock (for tools and
// tests looking at a running exporter's state).
func OpenReadOnly(dir string) (*Dir, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	return &Dir{path: dir}, nil
}

// Close releases the lock.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	return d.lock.Close()
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// File is the path of the named file in the directory.
func (d *Dir) File(name string) string { return filepath.Join(d.path, name) }

// ReadBytes returns the named file's content; false, and no error, when it
// does not exist yet.
func (d *Dir) ReadBytes(name string) ([]byte, bool, error) {
	data, err := os.ReadFile(filepath.Join(d.path, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	return data, err == nil, err
}

// Remove deletes the named file if it exists.
func (d *Dir) Remove(name string) error {
	err := os.Remove(filepath.Join(d.path, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Read decodes the named file into v. It reports false, and no error, when
// the file does not exist yet.
func (d *Dir) Read(name string, v any) (bool, error) {
	data, err := os.ReadFile(filepath.Join(d.path, name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Join(d.path, name), err)
	}
	return true, nil
}

// Write replaces the named file with v, atomically and durably.
func (d *Dir) Write(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return d.WriteBytes(name, data)
}

// WriteBytes replaces the named file with data, atomically and durably.
func (d *Dir) WriteBytes(name string, data []byte) error {
	final := filepath.Join(d.path, name)
	tmp, err := os.CreateTemp(d.path, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	dir, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
