package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/instance"
)

// validateCmd checks every file named, like nginx -t: "FILE: ok" on stdout
// for a good one, every problem of every bad one on stderr, exit 1 if any
// is bad. systemd's ExecReload runs it before the SIGHUP, so it must refuse
// whatever the reload would refuse: beyond configs.Load, it reads the TLS
// files with the code the reload loads them with (instance.CheckTLS).
func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("azimuth validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: azimuth validate FILE...

Loads each config file as azimuth would (strict keys, defaults, file paths
resolved against the file's directory, every check) without starting
anything, then reads its TLS files as a reload would: every certificate
and key parses and each key matches its certificate, CA bundles hold
certificates only, at least one. Prints "FILE: ok" for a valid file; for
an invalid one prints every problem as FILE:LINE: key.path: message. A
certificate that has expired or is not valid yet is a problem; one that
expires within 14 days is printed as a warning and does not make the file
invalid. Exits 0 if all files are valid, 1 if any is not, 2 on a usage
error.
`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	code := exitOK
	for _, path := range fs.Args() {
		cfg, err := configs.Load(path)
		if err != nil {
			code = exitFail
			var errs *configs.Errors
			if errors.As(err, &errs) {
				for _, p := range errs.Problems {
					fmt.Fprintln(stderr, p)
				}
				continue
			}
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			continue
		}
		probs, failed := instance.CheckTLS(path, cfg, time.Now())
		for _, p := range probs {
			fmt.Fprintln(stderr, p)
		}
		if failed {
			code = exitFail
			continue
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
	}
	return code
}
