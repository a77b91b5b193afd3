// Command azimuth is the availability-aware reverse proxy. It runs from one
// config file (azimuth -config FILE), checks config files without running
// (azimuth validate FILE...), and prints its version (azimuth version).
package main

import (
	"context"
	"os"
)

func main() {
	// run handles SIGTERM, SIGINT, SIGHUP and SIGUSR1 itself: the first
	// stop signal drains, a second one exits at once.
	os.Exit(cli(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
