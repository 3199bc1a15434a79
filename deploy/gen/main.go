// Command gen writes deploy/kubernetes (go generate ./deploy/..., run from
// deploy/).
package main

import (
	"fmt"
	"os"

	"github.com/usage-exporter/usage-exporter/deploy"
)

func main() {
	if err := deploy.Write("..", "kubernetes"); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
