package exporter

import (
	"encoding/json"
	"time"

	"github.com/usage-exporter/usage-exporter/exporter/litellm"
	"github.com/usage-exporter/usage-exporter/exporter/quota"
	"github.com/usage-exporter/usage-exporter/exporter/rollup"
	"github.com/usage-exporter/usage-exporter/exporter/series"
	"github.com/usage-exporter/usage-exporter/exporter/tailer"
	"github.com/usage-exporter/usage-exporter/plans"
)

// checkpoint is the state file: where every file was read to, LiteLLM's
// counters as applied, and the ledger's part.
type checkpoint struct {
	Version   int               `json:"version"`
	Written   time.Time         `json:"written"`
	Positions []tailer.Position `json:"positions"`
	// LiteLLM holds the baselines of LiteLLM's processes as last applied
	// (litellm.Processes' binary form), so that a restart adds only what
	// LiteLLM counted since. The state file keeps it in a part of its own.
	LiteLLM []byte `json:"-"`
	// LegacyLiteLLM is the summed counters of a version before: present, the
	// next scrape of LiteLLM is a baseline.
	LegacyLiteLLM json.RawMessage `json:"litellm,omitempty"`
	// Rollups are the rollups' open days and the sealed days' files
	// (rollup.Saved's encoding), in a part of their own.
	Rollups []byte `json:"-"`
	// FirstTimes and LastTimes are the oldest and newest line times the
	// counters hold, by source.
	FirstTimes map[string]float64 `json:"first_times,omitempty"`
	LastTimes  map[string]float64 `json:"last_times,omitempty"`
	// UserIDs is how the ledger's, the tiers' and the labels' user ids are
	// stored (idScheme): raw, or keyed hashes. Empty before they followed
	// users.label: raw.
	UserIDs string `json:"user_ids,omitempty"`
	// Users holds the users with a label of their own, the traffic counts
	// that chose them, and every user's tier (encodeUsers), in a part of
	// its own.
	Users []byte `json:"-"`
	// OrgIDs and Orgs are the same for the organisations with a label of
	// their own (no tiers), in a part of their own.
	OrgIDs string `json:"org_ids,omitempty"`
	Orgs   []byte `json:"-"`
	quota.Saved
}

// resumeState is what a shared ledger commits with each batch: where the
// lines it counted were read to, and LiteLLM's baselines as applied.
type resumeState struct {
	Positions     []tailer.Position `json:"positions"`
	LiteLLM       []byte            `json:"litellm_processes,omitempty"`
	LegacyLiteLLM json.RawMessage   `json:"litellm,omitempty"`
}

// carried is what one pipeline hands to the next.
type carried struct {
	positions  []tailer.Position
	litellm    *litellm.Processes // nil: none yet
	legacy     bool               // LiteLLM's state is of a version before
	firstTimes map[string]float64
	lastTimes  map[string]float64
	tierOf     map[string]int  // the users' tiers as last resolved, by stored id
	tierNames  []string        // what the tier indexes of tierOf name
	rollups    *rollup.Rollups // the process's; nil when off
	users      *userLabels     // nil: none yet
	orgs       *userLabels     // nil: none yet
	rewrite    bool            // the state file must be written even without news (ids converted)
}

func (cp *checkpoint) carried() (carried, error) {
	c := carried{positions: cp.Positions, firstTimes: cp.FirstTimes, lastTimes: cp.LastTimes}
	err := c.setLiteLLM(cp.LiteLLM, cp.LegacyLiteLLM)
	return c, err
}

func (c *carried) setLiteLLM(data []byte, legacy json.RawMessage) error {
	c.litellm, c.legacy = nil, len(legacy) > 0
	if len(data) == 0 {
		return nil
	}
	c.litellm = litellm.NewProcesses(0)
	return c.litellm.UnmarshalBinary(data)
}

// resumeFrom continues from a state a shared ledger committed, newer than
// the state file.
func (c *carried) resumeFrom(data json.RawMessage) error {
	var rs resumeState
	if err := json.Unmarshal(data, &rs); err != nil {
		return err
	}
	c.positions = rs.Positions
	return c.setLiteLLM(rs.LiteLLM, rs.LegacyLiteLLM)
}

// retier maps the carried tier indexes onto the tiers of a new resolver.
func (c *carried) retier(r *plans.Resolver) {
	if c.tierNames == nil {
		return
	}
	index := map[string]int{}
	for i, n := range r.Names() {
		index[n] = i
	}
	for u, t := range c.tierOf {
		if i, ok := index[c.tierNames[t]]; ok {
			c.tierOf[u] = i
		} else {
			delete(c.tierOf, u)
		}
	}
}

// snapshot is a checkpoint taken by the ingest goroutine, on its way to
// the state file; once it is there, what it holds is published.
type snapshot struct {
	data    []byte
	quota   *quota.Checkpoint
	view    *quotaView
	lines   *series.Snapshot
	rollups *rollup.Saved // nil without rollups
}

// snapshot captures the pipeline's state at this point of the stream. It
// is where user labels are handed over: the series of users who lost
// theirs leave with this checkpoint.
func (in *ingester) snapshot(written time.Time) *snapshot {
	in.rebalance(written)
	in.changed, in.period = false, in.ledger.current().ID
	rs := resumeState{Positions: in.positionList()}
	if in.procs.Count() > 0 {
		rs.LiteLLM, _ = in.procs.MarshalBinary()
	}
	resume, _ := json.Marshal(rs)
	in.ledger.retain()
	qc := in.ledger.store.Checkpoint(resume)
	cp := checkpoint{Version: 3, Written: written.UTC(), Positions: rs.Positions, LiteLLM: rs.LiteLLM,
		FirstTimes: in.firstTimes, LastTimes: in.lastTimes, Saved: qc.Saved, UserIDs: idScheme(in.attr.users.cfg),
		Users: encodeUsers(in.attr.users, in.ledger.tierOf, in.attr.tiers.Names())}
	if in.attr.orgs != nil {
		cp.OrgIDs, cp.Orgs = idScheme(in.attr.orgs.cfg), encodeUsers(in.attr.orgs, nil, nil)
	}
	var rollups *rollup.Saved
	if in.rollups != nil {
		rollups = in.rollups.Checkpoint()
		cp.Rollups = rollups.Encode()
	}
	lines := in.count.m.Lines.Snapshot()
	in.view = in.quotaView(in.view)
	return &snapshot{data: encodeState(&cp, lines.Encode(nil)), quota: qc, view: in.view, lines: lines, rollups: rollups}
}

// rebalance hands user and organisation labels over to heavier ones and
// drops the series of those that lost theirs.
func (in *ingester) rebalance(now time.Time) {
	if gone := in.attr.users.rebalance(now); len(gone) > 0 {
		in.count.dropUsers(gone)
	}
	if in.attr.orgs != nil {
		if gone := in.attr.orgs.rebalance(now); len(gone) > 0 {
			in.count.dropOrgs(gone)
		}
	}
}

// carry is what the next pipeline continues from.
func (in *ingester) carry() carried {
	return carried{positions: in.positionList(), litellm: in.procs, rollups: in.rollups, firstTimes: in.firstTimes, lastTimes: in.lastTimes,
		tierOf: in.ledger.tierOf, tierNames: in.attr.tiers.Names(), users: in.attr.users, orgs: in.attr.orgs}
}
