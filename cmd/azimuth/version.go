package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release, set at build time with
// -ldflags "-X main.version=v1.2.3"; empty means the module version from
// the build info.
var version = ""

// buildInfo is what the binary knows about how it was built.
type buildInfo struct {
	Version  string
	Revision string
	Time     string
	Modified bool
	Go       string
}

// readBuildInfo fills buildInfo from the linker flag and
// runtime/debug.ReadBuildInfo. VCS data is absent when built with
// -buildvcs=false or outside a checkout; those fields are then "unknown".
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Revision: "unknown", Time: "unknown", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if ok {
		if b.Version == "" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "unknown"
	}
	return b
}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("azimuth version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: azimuth version\n\nPrints the version, VCS revision and time, and Go version of this binary.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	b := readBuildInfo()
	rev := b.Revision
	if b.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(stdout, "azimuth %s\nrevision: %s\nbuilt:    %s\ngo:       %s %s/%s\n", b.Version, rev, b.Time, b.Go, runtime.GOOS, runtime.GOARCH)
	return exitOK
}
