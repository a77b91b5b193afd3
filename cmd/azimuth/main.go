// Command azimuth is the availability-aware reverse proxy. It runs from one
// config file (azimuth -config FILE), checks config files without running
// (azimuth validate FILE...), and prints its version (azimuth version).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := cli(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
