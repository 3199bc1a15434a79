package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/usage-exporter/usage-exporter/exporter"
)

// backfillFlags are the flags of `usage-exporter backfill`; the
// configuration file and --log.path / --log.format are the exporter's own.
type backfillFlags struct {
	from, to, step, out, stateOut, until *string
	labels                               *map[string]string
	sums                                 *bool
}

func backfillCommand(app *kingpin.Application) *backfillFlags {
	c := app.Command("backfill", "Write the history of existing logs as Prometheus TSDB blocks, dated by log time, with the live exporter's series.")
	return &backfillFlags{
		from:     c.Flag("from", "First log time written: 2006-01-02 or RFC 3339.").Required().String(),
		to:       c.Flag("to", "Log time where the history ends (exclusive): 2006-01-02 or RFC 3339; default now.").String(),
		step:     c.Flag("step", "Interval between samples, as a scrape interval.").Default("1m").String(),
		out:      c.Flag("out", "Directory of the TSDB blocks (move them into Prometheus' --storage.tsdb.path).").Required().String(),
		stateOut: c.Flag("state.out", "Write here the state a live exporter (--state.dir) continues from: read positions at the end of the history and every series' value.").String(),
		until:    c.Flag("until-checkpoint", "A running exporter's --state.dir: stop where its lines begin (its first line time).").String(),
		sums:     c.Flag("recording-rules", "Also write the history of the recording rules that sum counters (usage-sums in prometheus/rules), which the optimizer reads.").Default("true").Bool(),
		labels:   c.Flag("label", "Label added to every series, name=value (repeatable): the job and instance the live exporter is scraped as.").Default("job=usage-exporter").StringMap(),
	}
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

func (f *backfillFlags) run(cfg *exporter.Config) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "usage-exporter backfill:", err)
		return 1
	}
	from, err := parseTime(*f.from)
	if err != nil {
		return fail(fmt.Errorf("--from: %w", err))
	}
	to := time.Now()
	if *f.to != "" {
		if to, err = parseTime(*f.to); err != nil {
			return fail(fmt.Errorf("--to: %w", err))
		}
	}
	step, err := time.ParseDuration(*f.step)
	if err != nil || step <= 0 {
		return fail(fmt.Errorf("--step %q: a positive duration", *f.step))
	}
	if *f.until != "" {
		cp, err := exporter.ReadState(*f.until)
		if err != nil {
			return fail(fmt.Errorf("--until-checkpoint: %w", err))
		}
		first := time.Time{}
		for _, ts := range cp.FirstTimes {
			if t := time.UnixMilli(int64(ts * 1000)); first.IsZero() || t.Before(first) {
				first = t
			}
		}
		if first.IsZero() {
			return fail(fmt.Errorf("--until-checkpoint: %s holds no line time", *f.until))
		}
		if first.Before(to) {
			to = first
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := exporter.Backfill(ctx, exporter.BackfillOptions{Config: cfg, From: from, To: to, Step: step, Out: *f.out,
		Labels: *f.labels, StateOut: *f.stateOut, RecordedSums: *f.sums, Progress: os.Stderr})
	if err != nil {
		return fail(err)
	}
	took := time.Since(start)
	fmt.Fprintf(os.Stderr, "backfill: %d lines in %s (%.0f lines/s), %d invalid, %d before --from; %d series, %d samples, %d blocks in %s\n",
		res.Lines, took.Round(time.Millisecond), float64(res.Lines)/took.Seconds(), res.Invalid, res.Skipped, res.Series, res.Samples, res.Blocks, *f.out)
	var reasons []string
	for r, n := range res.Reasons {
		reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(reasons)
	if len(reasons) > 0 {
		fmt.Fprintf(os.Stderr, "backfill: invalid lines by reason: %s\n", strings.Join(reasons, ", "))
	}
	if *f.stateOut != "" {
		fmt.Fprintf(os.Stderr, "backfill: state for the live exporter in %s (start it with --state.dir=%s --log.start=checkpoint)\n", *f.stateOut, *f.stateOut)
	}
	return 0
}
