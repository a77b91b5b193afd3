// Command azload drives load at an HTTP service and plays out zone outages
// against a real azimuth on loopback.
//
//	azload [run] [flags] URL     open or closed loop load at one URL
//	azload scenario [flags] FILE run a scenario file (fleet, azimuth, load, faults)
//	azload demo [flags]          the built-in zone outage scenario
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "azload:", err)
		}
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "run":
			return runCmd(ctx, args[1:], stdout, stderr)
		case "scenario":
			return scenarioCmd(ctx, args[1:], stdout, stderr)
		case "demo":
			return demoCmd(ctx, args[1:], stdout, stderr)
		}
	}
	return runCmd(ctx, args, stdout, stderr)
}
