package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
	"github.com/azimuthproxy/azimuth/loadtest/scenario"
)

// scenarioCmd is `azload scenario [flags] FILE`.
func scenarioCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("azload scenario", flag.ContinueOnError)
	fs.SetOutput(stderr)
	common := addCommon(fs, "")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azload scenario [flags] FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want exactly one scenario file")
	}
	sc, err := scenario.LoadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	if common.binary == "" && sc.Azimuth.Binary == "" {
		if common.binary, err = findAzimuth(); err != nil {
			return err
		}
	}
	return play(ctx, sc, common, stdout)
}

// demoCmd is `azload demo [flags]`: the built-in zone outage.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("azload demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	common := addCommon(fs, "azimuth-demo.html")
	var o scenario.DemoOptions
	fs.DurationVar(&o.Duration, "d", 20*time.Second, "load duration")
	fs.Float64Var(&o.Rate, "rate", 500, "requests per second")
	fs.DurationVar(&o.FaultFrom, "fault-from", 5*time.Second, "when the proxy's zone fails")
	fs.DurationVar(&o.FaultTo, "fault-to", 15*time.Second, "when it is restored")
	fs.StringVar(&o.Fault, "fault", "blackhole", `the fault: blackhole, refuse, reset, reset_before_headers, "slow: 500ms", "status: 503"`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azload demo [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("demo takes no arguments, got %q", fs.Args())
	}
	sc, err := scenario.Demo(o)
	if err != nil {
		return err
	}
	if common.binary == "" {
		if common.binary, err = findAzimuth(); err != nil {
			return err
		}
	}
	return play(ctx, sc, common, stdout)
}

// commonFlags are shared by scenario and demo.
type commonFlags struct {
	binary, report, output, workdir string
	minSuccess                      float64
}

func addCommon(fs *flag.FlagSet, defaultReport string) *commonFlags {
	c := &commonFlags{}
	fs.StringVar(&c.binary, "azimuth", "", "azimuth binary (overrides the scenario's azimuth.binary; default: the one beside azload, else on PATH)")
	fs.StringVar(&c.report, "report", defaultReport, "write an HTML report to this file (empty: none)")
	fs.StringVar(&c.output, "o", "text", "output: text or json")
	fs.StringVar(&c.workdir, "workdir", "", "keep azimuth's config and logs in this directory")
	fs.Float64Var(&c.minSuccess, "min-success", 0, "fail (exit 1) if the success rate during the fault window, or the whole run without faults, is below this percentage")
	return c
}

func play(ctx context.Context, sc *scenario.Scenario, c *commonFlags, stdout io.Writer) error {
	if c.output != "text" && c.output != "json" {
		return fmt.Errorf("output %q: want text or json", c.output)
	}
	ro := scenario.RunOptions{Binary: c.binary, WorkDir: c.workdir, Log: io.Discard}
	live := isTerminal(stdout)
	if c.output == "text" {
		ro.Log = stdout
	}
	if live && c.output == "text" {
		ro.Log = &lineClearer{w: stdout}
		ro.Progress = func(p loadtest.Progress) { printProgress(stdout, p) }
	}
	rep, err := scenario.Run(ctx, sc, ro)
	if live {
		fmt.Fprint(stdout, "\r\033[K")
	}
	if err != nil {
		return err
	}
	if c.report != "" {
		var buf bytes.Buffer
		if err := rep.WriteHTML(&buf); err != nil {
			return fmt.Errorf("rendering report: %w", err)
		}
		if err := os.WriteFile(c.report, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	}
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep.JSON()); err != nil {
			return err
		}
	} else {
		if err := rep.WriteText(stdout); err != nil {
			return err
		}
		if c.report != "" {
			fmt.Fprintf(stdout, "report     %s\n", c.report)
		}
	}
	if c.minSuccess > 0 {
		ph := rep.Phase("during")
		if !rep.HasWindow {
			ph = rep.Phase("all")
		}
		if got := 100 * ph.SuccessRate(); got < c.minSuccess {
			return fmt.Errorf("success %.3f%% in phase %q is below -min-success %.3f%%", got, ph.Name, c.minSuccess)
		}
	}
	return nil
}

// lineClearer clears the live progress line before each log line.
type lineClearer struct{ w io.Writer }

func (l *lineClearer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(l.w, "\r\033[K"); err != nil {
		return 0, err
	}
	return l.w.Write(p)
}
