// Command gen writes the dashboards to grafana/dashboards (go generate
// ./grafana/..., run from grafana/).
package main

import (
	"fmt"
	"os"

	"github.com/usage-exporter/usage-exporter/grafana"
)

func main() {
	if err := grafana.Write("dashboards"); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
