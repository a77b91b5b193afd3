package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	edgetls "github.com/azimuthproxy/azimuth/tls"
)

// validateCmd checks every file named, like nginx -t: "FILE: ok" on stdout
// for a good one, every problem of every bad one on stderr, exit 1 if any
// is bad. systemd's ExecReload runs it before the SIGHUP, so it must refuse
// whatever the reload would refuse: beyond configs.Load, it reads the TLS
// files with the code the reload loads them with (see tlsProblems).
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
		probs, failed := tlsProblems(path, cfg, time.Now())
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

// tlsProblems reads every TLS file of cfg as the reload path does: each
// listener's through edgetls.Check on the options tlsSourceOptions makes
// for edgetls.New, each pool's through edgetls.CheckBackend on those
// backendTLS makes for edgetls.BackendTLSConfig. Each problem is placed on
// the line of the key that names the file, as configs places its own, a
// warning's message starting "warning: ". failed is true if any problem is
// not a warning.
func tlsProblems(file string, cfg *configs.Config, now time.Time) (probs []configs.Problem, failed bool) {
	add := func(prefix string, found []edgetls.Problem) {
		for _, p := range found {
			key := prefix + p.Key
			msg := p.Err.Error()
			if p.Warning {
				msg = "warning: " + msg
			} else {
				failed = true
			}
			probs = append(probs, configs.Problem{File: file, Line: cfg.Line(key), Path: key, Msg: msg})
		}
	}
	for i := range cfg.Listeners {
		if l := &cfg.Listeners[i]; l.TLS != nil {
			add(fmt.Sprintf("listeners[%d].tls.", i), edgetls.Check(tlsSourceOptions(l), now))
		}
	}
	for i := range cfg.Pools {
		if o := backendTLS(&cfg.Pools[i]); o != nil {
			add(fmt.Sprintf("pools[%d].tls.", i), edgetls.CheckBackend(*o, now))
		}
	}
	slices.SortStableFunc(probs, func(a, b configs.Problem) int { return cmp.Compare(a.Line, b.Line) })
	return probs, failed
}
