package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/azimuthproxy/azimuth/configs"
)

// Exit codes: 0 success, 1 failure (a bad config, a runtime error), 2 a
// command line that cannot be understood.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// defaultConfig is where azimuth looks when -config is not given.
const defaultConfig = "/etc/azimuth/azimuth.yaml"

// cli runs the command line args (without the program name) and returns
// the exit code. ctx ends on SIGTERM or SIGINT.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "validate":
			return validateCmd(args[1:], stdout, stderr)
		case "version":
			return versionCmd(args[1:], stdout, stderr)
		case "healthcheck":
			return healthcheckCmd(ctx, args[1:], stdout, stderr)
		case "help":
			usage(stdout, newRunFlags(stdout, new(string)))
			return exitOK
		}
	}
	var configPath string
	fs := newRunFlags(stderr, &configPath)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "azimuth: unknown command %q; see azimuth -h\n", fs.Arg(0))
		return exitUsage
	}
	if err := run(ctx, configPath, stdout, stderr); err != nil {
		printError(stderr, err)
		return exitFail
	}
	return exitOK
}

func newRunFlags(out io.Writer, configPath *string) *flag.FlagSet {
	fs := flag.NewFlagSet("azimuth", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(configPath, "config", defaultConfig, "the config `file` to run from (see configs/azimuth.yaml for every option)")
	fs.Usage = func() { usage(out, fs) }
	return fs
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage:
  azimuth [-config FILE]      run the proxy from FILE
  azimuth validate FILE...    check config files: prints "FILE: ok" or every
                              problem as FILE:LINE: key.path: message, and
                              exits 1 if any file has a problem
  azimuth version             print the version and build
  azimuth healthcheck [-admin ADDR] [-config FILE] [-ready] [-timeout 2s]
                              ask a running azimuth's /healthz (or /readyz);
                              exits 0 on 200, 1 otherwise (for container
                              HEALTHCHECK and probes without curl)

Signals: SIGHUP re-reads the config file and logs any problem with it;
SIGTERM and SIGINT stop.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// printError writes err for an operator: a config's problems one per line,
// anything else on one line.
func printError(w io.Writer, err error) {
	var errs *configs.Errors
	if errors.As(err, &errs) {
		fmt.Fprintf(w, "azimuth: config has %d problem(s):\n", len(errs.Problems))
		for _, p := range errs.Problems {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintf(w, "azimuth: %v\n", err)
}
