package exporter

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usage-exporter/usage-exporter/exporter/state"
)

// The state file holds everything a restart continues from, written
// atomically at every checkpoint: a header line, then the checkpoint
// (positions, the ledger) as JSON, the series' values in their compact
// encoding, LiteLLM's baselines in theirs, the rollups' open days (the
// sealed days are files of their own the checkpoint names), and the users'
// labels and tiers, each part after its length. A part a version before
// did not write is empty.
const (
	stateFile       = "checkpoint.bin"
	legacyStateFile = "checkpoint.json" // before the series were kept: JSON only
	stateHeader     = "usage-exporter state 3\n"
	stateHeader2    = "usage-exporter state 2\n" // before LiteLLM's baselines had a part
)

func encodeState(cp *checkpoint, lines []byte) []byte {
	j, _ := json.Marshal(cp)
	b := make([]byte, 0, len(stateHeader)+len(j)+len(lines)+len(cp.LiteLLM)+len(cp.Rollups)+len(cp.Users)+50)
	b = append(b, stateHeader...)
	for _, part := range [][]byte{j, lines, cp.LiteLLM, cp.Rollups, cp.Users, cp.Orgs} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b
}

func decodeState(data []byte) (cp checkpoint, lines []byte, err error) {
	version := 3
	switch {
	case bytes.HasPrefix(data, []byte(stateHeader)):
	case bytes.HasPrefix(data, []byte(stateHeader2)):
		version = 2
	default:
		return cp, nil, errors.New("not a usage-exporter state file (or of a newer version)")
	}
	rest := data[len(stateHeader):]
	part := func() []byte {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			err = errors.New("truncated")
			return nil
		}
		p := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return p
	}
	j := part()
	lines = part()
	var llm, rollups, users, orgs []byte
	if version >= 3 {
		llm = part()
	}
	if len(rest) > 0 {
		rollups = part()
	}
	if len(rest) > 0 {
		users = part()
	}
	if len(rest) > 0 {
		orgs = part()
	}
	if err != nil {
		return cp, nil, err
	}
	if err := json.Unmarshal(j, &cp); err != nil {
		return cp, nil, err
	}
	cp.LiteLLM, cp.Rollups, cp.Users, cp.Orgs = llm, rollups, users, orgs
	return cp, lines, nil
}

// readState reads the state file, or the JSON checkpoint of a version
// before it (no series values: the counters start from zero once).
func readState(dir *state.Dir) (checkpoint, []byte, error) {
	data, ok, err := dir.ReadBytes(stateFile)
	if err != nil {
		return checkpoint{}, nil, err
	}
	if ok {
		cp, lines, err := decodeState(data)
		if err != nil {
			return cp, nil, fmt.Errorf("%s: %w", dir.File(stateFile), err)
		}
		return cp, lines, nil
	}
	var cp checkpoint
	_, err = dir.Read(legacyStateFile, &cp)
	return cp, nil, err
}

// ReadState returns what the state file in dir holds besides the series:
// read positions, LiteLLM's baselines, the ledger (for tools and tests).
func ReadState(dir string) (Checkpoint, error) {
	d, err := state.OpenReadOnly(dir)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, _, err := readState(d)
	return Checkpoint(cp), err
}

// Checkpoint is the state file's checkpoint, as ReadState returns it.
type Checkpoint checkpoint
