package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/instance"
	"go.yaml.in/yaml/v3"
)

// healthcheckCmd asks a running azimuth's admin API whether it is alive
// (/healthz) or ready to take traffic (/readyz, with -ready), for probes
// that cannot bring their own client: a container image's HEALTHCHECK has
// no curl. It exits 0 on 200 and 1 on anything else, a bad command line
// included, because Docker reserves exit code 2 for HEALTHCHECK. One line
// says why: on stdout when healthy, on stderr when not.
//
// The admin address comes from -admin, else from the config file's
// admin.address, else the default. Both endpoints are open, so
// admin.token_file is not read.
func healthcheckCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("azimuth healthcheck", flag.ContinueOnError)
	flags.SetOutput(stderr)
	admin := flags.String("admin", "", "the admin `address` (host:port) to ask; default: admin.address from -config")
	configPath := flags.String("config", defaultConfig, "the config `file` to read admin.address from")
	ready := flags.Bool("ready", false, "ask /readyz (serving, has healthy backends, not draining) instead of /healthz (process alive)")
	timeout := flags.Duration("timeout", 2*time.Second, "give up after this long")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), `Usage: azimuth healthcheck [-admin ADDR] [-config FILE] [-ready] [-timeout 2s]

Asks a running azimuth's admin API for /healthz (or /readyz with -ready).
Exits 0 on 200 and 1 otherwise, printing one line that says why.

Flags:
`)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitFail
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "azimuth healthcheck: unexpected argument %q\n", flags.Arg(0))
		return exitFail
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "azimuth healthcheck: -timeout must be > 0, got %s\n", *timeout)
		return exitFail
	}
	explicitConfig := false
	flags.Visit(func(f *flag.Flag) { explicitConfig = explicitConfig || f.Name == "config" })

	addr := *admin
	if addr == "" {
		var warn string
		var err error
		addr, warn, err = adminAddressFromConfig(*configPath, explicitConfig)
		if err != nil {
			fmt.Fprintf(stderr, "azimuth healthcheck: %v\n", err)
			return exitFail
		}
		if warn != "" {
			fmt.Fprintf(stderr, "azimuth healthcheck: %s\n", warn)
		}
	}
	addr, err := dialableAdmin(addr)
	if err != nil {
		fmt.Fprintf(stderr, "azimuth healthcheck: %v\n", err)
		return exitFail
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	line, ok := probeAdmin(ctx, addr, path)
	if !ok {
		fmt.Fprintf(stderr, "azimuth healthcheck: %s\n", line)
		return exitFail
	}
	fmt.Fprintln(stdout, line)
	return exitOK
}

// adminAddressFromConfig reads admin.address from the config file at path.
// The running proxy keeps its last good config when the file goes bad, so
// a file that no longer validates must not fail the check of a healthy
// process: the address is then read leniently, with a warning. A missing
// file at the default path means the default address; a missing file that
// was named explicitly is an error, since it is likely a typo.
func adminAddressFromConfig(path string, explicit bool) (addr, warn string, err error) {
	cfg, err := configs.Load(path)
	if err == nil {
		return cfg.Admin.Address, "", nil
	}
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		if !explicit && errors.Is(rerr, fs.ErrNotExist) {
			return configs.DefaultAdminAddress, "", nil
		}
		return "", "", fmt.Errorf("reading admin.address from config: %w", rerr)
	}
	var partial struct {
		Admin struct {
			Address string `yaml:"address"`
		} `yaml:"admin"`
	}
	addr = configs.DefaultAdminAddress
	if yaml.Unmarshal(data, &partial) == nil && partial.Admin.Address != "" {
		addr = partial.Admin.Address
	}
	return addr, fmt.Sprintf("config %s does not load (%s); asking %s", path, oneLine(err.Error()), addr), nil
}

// dialableAdmin checks addr is host:port and turns a wildcard host
// (":9901", "0.0.0.0:9901", "[::]:9901"), which the admin listens on but a
// client cannot address, into the matching loopback address.
func dialableAdmin(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin address %q: want host:port: %w", addr, err)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.Equal(net.IPv4zero)):
		host = "127.0.0.1"
	case ip != nil && ip.Equal(net.IPv6unspecified):
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// probeAdmin GETs path from the admin at addr and reports one line and
// whether the answer was 200. It uses its own transport without a proxy,
// so HTTP_PROXY in the environment cannot send the probe elsewhere.
func probeAdmin(ctx context.Context, addr, path string) (string, bool) {
	url := "http://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Sprintf("building request for %s: %v", url, err), false
	}
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	defer client.CloseIdleConnections()
	started := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Sprintf("GET %s: no answer within the timeout (%s)", url, time.Since(started).Round(time.Millisecond)), false
		}
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // it repeats the method and URL
		}
		return fmt.Sprintf("GET %s: %v", url, err), false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	took := time.Since(started).Round(time.Microsecond)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("GET %s: %s%s", url, resp.Status, bodyReason(body)), false
	}
	return fmt.Sprintf("ok: GET %s: %s in %s", url, resp.Status, took), true
}

// bodyReason is what an unhealthy answer's body says, as ": why" on one
// line: /readyz's reasons, or the body's first line.
func bodyReason(body []byte) string {
	var r instance.Readiness
	if json.Unmarshal(body, &r) == nil && len(r.Reasons) > 0 {
		return ": " + strings.Join(r.Reasons, "; ")
	}
	if s := oneLine(strings.TrimSpace(string(body))); s != "" {
		return ": " + s
	}
	return ""
}

// oneLine is s's first line, capped so a probe's output stays one short
// line.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
