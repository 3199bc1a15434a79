package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/usage-exporter/usage-exporter/exporter"
)

// forgetFlags are the flags of `usage-exporter forget`; --state.dir, the
// configuration file and --redis.url are the exporter's own.
type forgetFlags struct {
	user, prometheus *string
}

func forgetCommand(app *kingpin.Application) *forgetFlags {
	c := app.Command("forget", "Remove a user from the state directory and the shared ledger, deny-list their id, and print the Prometheus call that deletes their history (docs/runbook.md#forgetting-a-user). Stop the exporter first.")
	return &forgetFlags{
		user:       c.Flag("user", "The user id as the logs carry it.").Required().String(),
		prometheus: c.Flag("prometheus.url", "Prometheus whose history the printed call deletes.").Default("http://localhost:9090").String(),
	}
}

func (f *forgetFlags) run(cfg *exporter.Config, stateDir string) int {
	rep, err := exporter.Forget(context.Background(), cfg, stateDir, *f.user, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage-exporter forget:", err)
		return 1
	}
	fmt.Printf("forgot the user in %s: %d ledger entries, %d series, %d rollup days rewritten, tracked: %v\n",
		stateDir, rep.LedgerEntries, rep.Series, rep.RollupDays, rep.TrackedUser)
	if cfg.Redis.Enabled() {
		fmt.Printf("Redis: %d fields of the shared ledger removed, %d exporters' rollup days rewritten\n", rep.RedisFields, rep.RedisRollups)
	}
	fmt.Println("their id is on the deny list: their lines count as user=\"__forgotten__\" from the next start")
	if rep.Label == "" {
		fmt.Println("users.label is dropped: no series ever named the user; nothing to delete in Prometheus")
		return 0
	}
	fmt.Println("delete their history in Prometheus (it needs --web.enable-admin-api), then free the space:")
	fmt.Println(deleteSeriesCall(*f.prometheus, rep.Label))
	fmt.Printf("curl -X POST '%s/api/v1/admin/tsdb/clean_tombstones'\n", strings.TrimSuffix(*f.prometheus, "/"))
	return 0
}

// deleteSeriesCall is the curl command that deletes every series whose
// user label is label, recorded ones included.
func deleteSeriesCall(prom, label string) string {
	matcher := `{user="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(label) + `"}`
	return fmt.Sprintf("curl -X POST '%s/api/v1/admin/tsdb/delete_series?match[]=%s'",
		strings.TrimSuffix(prom, "/"), url.QueryEscape(matcher))
}
