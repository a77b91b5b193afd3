package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/azimuthproxy/azimuth/configs"
)

// validateCmd checks every file named, like nginx -t: "FILE: ok" on stdout
// for a good one, every problem of every bad one on stderr, exit 1 if any
// is bad.
func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("azimuth validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: azimuth validate FILE...

Loads each config file as azimuth would (strict keys, defaults, file paths
resolved against the file's directory, every check) without starting
anything. Prints "FILE: ok" for a valid file; for an invalid one prints
every problem as FILE:LINE: key.path: message. Exits 0 if all files are
valid, 1 if any is not, 2 on a usage error.
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
		_, err := configs.Load(path)
		if err == nil {
			fmt.Fprintf(stdout, "%s: ok\n", path)
			continue
		}
		code = exitFail
		var errs *configs.Errors
		if errors.As(err, &errs) {
			for _, p := range errs.Problems {
				fmt.Fprintln(stderr, p)
			}
			continue
		}
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
	}
	return code
}
