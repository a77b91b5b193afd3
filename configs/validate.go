package configs

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// validator collects every problem of one Config, each placed on the line
// of the key it is about.
type validator struct {
	c     *Config
	name  string // the file's name as given, for Problem.File
	probs []Problem
}

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{File: v.name, Line: v.c.index.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks a defaulted Config and returns *Errors with every
// problem, or nil. Load and Parse already call it; it is exported for
// callers that build or adjust a Config in code.
func (c *Config) Validate() error {
	name := c.Source
	if name == "" {
		name = "config"
	}
	if probs := validate(c, name); len(probs) > 0 {
		return &Errors{Problems: sorted(probs)}
	}
	return nil
}

func validate(c *Config, file string) []Problem {
	v := &validator{c: c, name: file}
	v.top()
	v.listeners()
	v.pools()
	return v.probs
}

func (v *validator) top() {
	c := v.c
	if c.Zone != "" && !validName(c.Zone) {
		v.add("zone", "zone %q: use letters, digits, '-', '_' and '.'", c.Zone)
	}
	v.address("admin.address", c.Admin.Address, true)
	v.file("admin.token_file", c.Admin.TokenFile)
	names := map[string]bool{}
	if c.Admin.TokenFile != "" {
		names["default"] = true
	}
	for i, tk := range c.Admin.Tokens {
		p := fmt.Sprintf("admin.tokens[%d]", i)
		switch {
		case tk.Name == "":
			v.add(p+".name", "missing; every token needs a name")
		case !validName(tk.Name):
			v.add(p+".name", "%q: use letters, digits, '-', '_' and '.'", tk.Name)
		case names[tk.Name]:
			v.add(p+".name", "duplicate token name %q (\"default\" is admin.token_file's)", tk.Name)
		}
		names[tk.Name] = true
		if tk.File == "" {
			v.add(p+".file", "missing; a token is read from a file")
		}
		v.file(p+".file", tk.File)
	}
	if c.Admin.TokenFile == "" && len(c.Admin.Tokens) == 0 && !loopbackAddress(c.Admin.Address) {
		v.add("admin.address", "address %q is reachable from other hosts: set admin.token_file or admin.tokens, or listen on loopback (127.0.0.1, ::1)", c.Admin.Address)
	}
	v.readiness()
	v.overrides()
	if cs := c.Consul; cs != nil {
		v.address("consul.address", cs.Address, false)
		v.file("consul.token_file", cs.TokenFile)
		if t := cs.TLS; t != nil {
			v.file("consul.tls.ca_file", t.CAFile)
			v.certPair("consul.tls", t.CertFile, t.KeyFile)
		}
	}
	oneOf(v, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(v, "log.format", c.Log.Format, "json", "text")
	switch out := c.Log.AccessLog.Output; out {
	case AccessLogStdout, AccessLogStderr, AccessLogOff:
	case "":
		v.add("log.access_log.output", "empty; use stdout, stderr, off or a file path")
	default:
		if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
			v.add("log.access_log.output", "directory of %s does not exist", out)
		} else if st, err := os.Stat(out); err == nil && st.IsDir() {
			v.add("log.access_log.output", "%s is a directory", out)
		}
	}
	v.fraction("log.access_log.sample_success", c.Log.AccessLog.SampleSuccess)
	if c.Log.AccessLog.FlushInterval > 10*time.Second {
		v.add("log.access_log.flush_interval", "%s is over the maximum of 10s", c.Log.AccessLog.FlushInterval)
	}
	if l := c.Runtime.MemoryLimit; l != 0 && l < MinMemoryLimit {
		v.add("runtime.memory_limit", "%s is below the minimum of 16MiB; 0 means no limit", l)
	}
	switch p := c.Runtime.GCPercent; {
	case p == GCOff && c.Runtime.MemoryLimit == 0:
		v.add("runtime.gc_percent", "off needs runtime.memory_limit, or the heap grows without bound")
	case p != GCOff && p < MinGCPercent && c.index.has("runtime.gc_percent"):
		v.add("runtime.gc_percent", "%d is below the minimum of %d; leave the key out for GOGC or 100", p, MinGCPercent)
	case p > MaxGCPercent:
		v.add("runtime.gc_percent", "%d is above the maximum of %d; use off, under runtime.memory_limit", p, MaxGCPercent)
	}
	if len(c.Listeners) == 0 {
		v.add("listeners", "at least one listener is needed")
	}
}

// address checks host:port. The host may be empty (all interfaces) only
// where listen is true; port 0 (any free port) likewise.
func (v *validator) address(path, addr string, listen bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(path, "address %q: want host:port", addr)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		v.add(path, "address %q: port must be a number from 1 to 65535", addr)
		return
	}
	if n == 0 && !listen {
		v.add(path, "address %q: port 0 is only for listening", addr)
	}
	if host == "" {
		if !listen {
			v.add(path, "address %q: host is missing", addr)
		}
		return
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		v.add(path, "address %q: host is neither an IP address nor a valid name", addr)
	}
}

// file checks that a configured file exists and is a regular file.
func (v *validator) file(path, name string) {
	if name == "" {
		return
	}
	st, err := os.Stat(name)
	switch {
	case err != nil && os.IsNotExist(err):
		v.add(path, "file %s does not exist", name)
	case err != nil:
		v.add(path, "file %s: %v", name, err)
	case st.IsDir():
		v.add(path, "%s is a directory, want a file", name)
	}
}

// certPair checks an optional client certificate: both files or neither.
func (v *validator) certPair(path, cert, key string) {
	switch {
	case cert != "" && key == "":
		v.add(path+".key_file", "missing; cert_file needs its key_file")
	case cert == "" && key != "":
		v.add(path+".cert_file", "missing; key_file needs its cert_file")
	}
	v.file(path+".cert_file", cert)
	v.file(path+".key_file", key)
}

func oneOf(v *validator, path, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.add(path, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

func (v *validator) fraction(path string, f float64) {
	if f < 0 || f > 1 {
		v.add(path, "%g is outside 0..1", f)
	}
}

func (v *validator) percent(path string, n int) {
	if n < 0 || n > 100 {
		v.add(path, "%d is outside 0..100", n)
	}
}

func (v *validator) nonNegative(path string, n int) {
	if n < 0 {
		v.add(path, "%d is negative", n)
	}
}

// validName accepts the names used as metric labels and references.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// validHostname accepts DNS names of letters, digits and hyphens, with an
// optional trailing dot.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validHeaderName accepts an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// parseStatusRange reads "200-399" or "204" as an inclusive range of
// 3-digit HTTP status codes.
func parseStatusRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	if !isRange {
		b = a
	}
	lo, ok1 := statusCode(a)
	hi, ok2 := statusCode(b)
	if !ok1 || !ok2 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

func statusCode(s string) (int, bool) {
	if len(s) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return 0, false
	}
	return n, true
}

// loopbackAddress reports whether a host:port listens on loopback only:
// a loopback IP or localhost. An empty host listens on every interface.
func loopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true // reported as malformed elsewhere
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (v *validator) readiness() {
	r := v.c.Readiness
	if r.MinHealthyShare < 0 || r.MinHealthyShare > 1 {
		v.add("readiness.min_healthy_share", "%v: want a share from 0 to 1", r.MinHealthyShare)
	}
	for i, name := range r.Pools {
		known := false
		for _, p := range v.c.Pools {
			known = known || p.Name == name
		}
		if !known {
			v.add(fmt.Sprintf("readiness.pools[%d]", i), "no pool named %q", name)
		}
	}
	if r.Address == "" {
		return
	}
	v.address("readiness.address", r.Address, true)
	if strings.HasSuffix(r.Address, ":0") {
		return // a port of its own, whatever the others ask for
	}
	if r.Address == v.c.Admin.Address {
		v.add("readiness.address", "address %q is the admin listener's", r.Address)
	}
	for _, l := range v.c.Listeners {
		if l.Address == r.Address {
			v.add("readiness.address", "address %q is listener %s's", r.Address, l.Name)
		}
	}
}

func (v *validator) overrides() {
	o := v.c.Overrides
	if o.ConsulPrefix != "" && v.c.Consul == nil {
		v.add("overrides.consul_prefix", "needs a consul block: overrides are shared through its agent")
	}
	if strings.HasPrefix(o.ConsulPrefix, "/") {
		v.add("overrides.consul_prefix", "%q: a Consul KV prefix does not start with /", o.ConsulPrefix)
	}
	if o.File != "" {
		if fi, err := os.Stat(o.File); err == nil && fi.IsDir() {
			v.add("overrides.file", "%s is a directory: want the file's path", o.File)
		}
	}
}
