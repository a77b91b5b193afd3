package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
)

// headerFlag collects repeated -H "Name: value" flags.
type headerFlag struct{ h http.Header }

func (f *headerFlag) String() string { return "" }

func (f *headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	if f.h == nil {
		f.h = http.Header{}
	}
	f.h.Add(name, strings.TrimSpace(value))
	return nil
}

// runCmd is `azload [run] [flags] URL`.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("azload run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o        loadtest.Options
		headers  headerFlag
		body     = fs.String("body", "", "request body")
		bodyFile = fs.String("body-file", "", "read the request body from this file")
		proto    = fs.String("p", "h1", "protocol: h1, h2 (TLS ALPN, or h2c on http URLs) or h3")
		output   = fs.String("o", "text", "output: text or json")
	)
	fs.Float64Var(&o.Rate, "rate", 0, "open loop at this many requests per second (0: closed loop)")
	fs.IntVar(&o.Concurrency, "c", 0, "workers: requests in flight (closed loop) or the most in flight (open loop)")
	fs.IntVar(&o.Connections, "conns", 0, "h2 and h3: spread the workers over this many connections (-c 640 -conns 64: ten streams on each); 0: one connection")
	fs.DurationVar(&o.Duration, "d", 0, "run duration (default 10s unless -n is given)")
	fs.Int64Var(&o.Requests, "n", 0, "number of requests (0: until -d)")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "per-request timeout")
	fs.StringVar(&o.Method, "m", "GET", "HTTP method")
	fs.BoolVar(&o.Insecure, "insecure", false, "skip TLS certificate verification")
	fs.StringVar(&o.IDHeader, "id-header", "", "send a unique value in this header on every request (e.g. X-Request-Id, Idempotency-Key)")
	fs.Var(&headers, "H", "request header \"Name: value\" (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azload [run] [flags] URL")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want exactly one URL")
	}
	o.URL = fs.Arg(0)
	o.Header = headers.h
	o.Protocol = loadtest.Protocol(*proto)
	switch {
	case *bodyFile != "" && *body != "":
		return errors.New("-body and -body-file are exclusive")
	case *bodyFile != "":
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			return fmt.Errorf("reading body: %w", err)
		}
		o.Body = b
	case *body != "":
		o.Body = []byte(*body)
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("output %q: want text or json", *output)
	}
	live := isTerminal(stdout)
	if live {
		o.Progress = func(p loadtest.Progress) { printProgress(stdout, p) }
	}
	res, err := loadtest.Run(ctx, o)
	if live {
		fmt.Fprint(stdout, "\r\033[K")
	}
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteText(stdout)
}

// isTerminal reports whether w is a character device, so live progress is
// shown to people and kept out of pipes and files.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printProgress(w io.Writer, p loadtest.Progress) {
	fmt.Fprintf(w, "\r\033[K%6s  %8.0f req/s  %d requests  %d failed  p99 %s",
		p.Elapsed.Round(time.Second), p.Rate, p.Requests, p.Failed, p.P99.Round(10*time.Microsecond))
}
