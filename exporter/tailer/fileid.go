package tailer

import (
	"errors"
	"io"
	"os"
	"path"
	"syscall"

	"github.com/cespare/xxhash/v2"
)

// FileID identifies a file whatever its name: rotation renames files and
// copytruncate rewrites them in place, so names alone cannot tell.
type FileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func idOf(fi os.FileInfo) FileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)} //nolint:unconvert // Dev is int32 on some platforms
	}
	return FileID{}
}

// statID returns the identity of the file at name.
func statID(name string) (FileID, os.FileInfo, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return FileID{}, nil, err
	}
	return idOf(fi), fi, nil
}

// fingerprintMax is how much of a file's start identifies its content.
const fingerprintMax = 1024

// fingerprint hashes a file's first line (at most fingerprintMax bytes). An
// inode reused by a new file, or a file truncated and rewritten, shows as a
// different fingerprint. n is 0 while the file has no complete first line.
func fingerprint(f io.ReaderAt) (hash uint64, n int, err error) {
	var buf [fingerprintMax]byte
	got, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, err
	}
	for i := 0; i < got; i++ {
		if buf[i] == '\n' {
			return xxhash.Sum64(buf[:i+1]), i + 1, nil
		}
	}
	if got == fingerprintMax {
		return xxhash.Sum64(buf[:]), fingerprintMax, nil
	}
	return 0, 0, nil
}

// fingerprintFromData computes the fingerprint from the first bytes of a
// file, when they are at hand; ok is false if data is too short to tell.
func fingerprintFromData(data []byte) (hash uint64, n int, ok bool) {
	limit := min(len(data), fingerprintMax)
	for i := 0; i < limit; i++ {
		if data[i] == '\n' {
			return xxhash.Sum64(data[:i+1]), i + 1, true
		}
	}
	if len(data) >= fingerprintMax {
		return xxhash.Sum64(data[:fingerprintMax]), fingerprintMax, true
	}
	return 0, 0, false
}

// matchesFingerprint reports whether f starts with the content fingerprinted.
func matchesFingerprint(f io.ReaderAt, hash uint64, n int) bool {
	if n <= 0 || n > fingerprintMax {
		return n == 0
	}
	var buf [fingerprintMax]byte
	got, err := f.ReadAt(buf[:n], 0)
	if got < n || (err != nil && !errors.Is(err, io.EOF)) {
		return false
	}
	return xxhash.Sum64(buf[:n]) == hash
}

func checkPattern(p string) error {
	_, err := path.Match(p, "x")
	return err
}

// PositionOf is the position offset bytes into the file at name, matched by
// the source pattern, as the tailer records it: the file's identity and the
// fingerprint of its first line. A backfill hands it to the live exporter.
func PositionOf(source, name string, offset int64) (Position, error) {
	f, err := os.Open(name)
	if err != nil {
		return Position{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Position{}, err
	}
	hash, n, err := fingerprint(f)
	if err != nil {
		return Position{}, err
	}
	return Position{Source: source, Path: name, FileID: idOf(fi), Fingerprint: hash, FingerprintLen: n, Offset: offset}, nil
}
