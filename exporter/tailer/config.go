package tailer

import (
	"strconv"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
)

// Start positions for files found when the tailer starts.
const (
	StartCheckpoint = "checkpoint" // resume known files; read unknown ones from the beginning
	StartBeginning  = "beginning"  // read every file from its start, ignoring checkpoints
	StartEnd        = "end"        // skip what files hold at start; files that appear later are read whole
)

// Config configures how files are found and followed.
type Config struct {
	// Start is checkpoint, beginning or end.
	Start string `yaml:"start"`
	// PollInterval is how often a file is checked for growth, rotation and
	// truncation.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Inotify wakes the readers on inotify events in the files' directories;
	// polling then runs at ten times PollInterval, as a fallback.
	Inotify bool `yaml:"inotify"`
	// GlobInterval is how often globs are re-evaluated for new files.
	GlobInterval time.Duration `yaml:"glob_interval"`
	// RotateWait is how long a file renamed away (rotated) is still read
	// after its last growth, for writers that reopen late.
	RotateWait time.Duration `yaml:"rotate_wait"`
	// CatchUpBytes is accepted for old configurations and ignored: files
	// are always read in buffered batches now (it switched a line-by-line
	// follower to buffered reads).
	CatchUpBytes int64 `yaml:"catch_up_bytes"`
	// MaxLineBytes: longer lines are dropped and counted.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// Exclude are file-name patterns (path.Match on the base name) never read.
	Exclude []string `yaml:"exclude"`
}

// DefaultConfig looks at files every 250 ms, as nginxlog-exporter and mtail
// do, and never reads compressed rotations.
func DefaultConfig() Config {
	return Config{
		Start:        StartCheckpoint,
		PollInterval: 250 * time.Millisecond,
		GlobInterval: time.Second,
		RotateWait:   5 * time.Second,
		CatchUpBytes: 1 << 20,
		MaxLineBytes: 1 << 20,
		Exclude:      []string{"*.gz", "*.bz2", "*.xz", "*.zst", "*.zip"},
	}
}

// Validate checks ranges and patterns.
func (c Config) Validate() error {
	switch c.Start {
	case StartCheckpoint, StartBeginning, StartEnd:
	default:
		return fielderr.New("start", "must be checkpoint, beginning or end, not %q", c.Start)
	}
	if c.PollInterval < time.Millisecond {
		return fielderr.New("poll_interval", "must be at least 1ms, not %s", c.PollInterval)
	}
	if c.GlobInterval < time.Millisecond {
		return fielderr.New("glob_interval", "must be at least 1ms, not %s", c.GlobInterval)
	}
	if c.RotateWait < 0 {
		return fielderr.New("rotate_wait", "must not be negative")
	}
	if c.CatchUpBytes < 4096 {
		return fielderr.New("catch_up_bytes", "must be at least 4096, not %d", c.CatchUpBytes)
	}
	if c.MaxLineBytes < 256 || c.MaxLineBytes > 64<<20 {
		return fielderr.New("max_line_bytes", "must be between 256 and 64 MiB, not %d", c.MaxLineBytes)
	}
	for i, p := range c.Exclude {
		if err := checkPattern(p); err != nil {
			return fielderr.New("exclude["+strconv.Itoa(i)+"]", "bad pattern %q: %v", p, err)
		}
	}
	return nil
}
