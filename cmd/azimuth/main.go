// Command azimuth is the availability-aware reverse proxy. It runs from one
// config file (azimuth -config FILE), checks config files without running
// (azimuth validate FILE...), asks a running one whether it is healthy
// (azimuth healthcheck), and prints its version (azimuth version).
//
// The running proxy is package instance; this command owns what belongs
// to the process: flags, signals, the service manager's notifications,
// the log and access log files, and the Go runtime's memory settings. It
// may import every package of the module.
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
