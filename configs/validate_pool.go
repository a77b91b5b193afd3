package configs

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// maxAttempts bounds retry.attempts: more tries than this multiply load in
// an outage far more than they help.
const maxAttempts = 10

func (v *validator) pools() {
	names := map[string]int{}
	for i, pl := range v.c.Pools {
		p := fmt.Sprintf("pools[%d]", i)
		switch {
		case pl.Name == "":
			v.add(p+".name", "missing; every pool needs a name")
		case !validName(pl.Name):
			v.add(p+".name", "%q: use letters, digits, '-', '_' and '.'", pl.Name)
		default:
			if first, dup := names[pl.Name]; dup {
				v.add(p+".name", "duplicate pool name %q, also pools[%d]", pl.Name, first)
			}
			names[pl.Name] = i
		}
		oneOf(v, p+".balance", pl.Balance, BalanceLeastConn, BalanceRoundRobin, BalanceRandom, BalanceP2C, BalanceHash)
		v.affinity(p, pl)
		oneOf(v, p+".protocol", pl.Protocol, ProtocolHTTP1, ProtocolH2C, ProtocolH2)
		if pl.SendProxyProtocol != "" {
			oneOf(v, p+".send_proxy_protocol", pl.SendProxyProtocol, "v1", "v2")
			if pl.Protocol != ProtocolHTTP1 {
				v.add(p+".send_proxy_protocol", "only with protocol http1 (the pool's protocol is %s)", pl.Protocol)
			}
		}
		v.timeouts(p+".timeouts", pl.Timeouts)
		v.retry(p+".retry", pl.Retry)
		v.hedge(p+".hedge", pl)
		v.fraction(p+".zones.spill_below", pl.Zones.SpillBelow)
		v.fraction(p+".zones.panic_below", pl.Zones.PanicBelow)
		if pl.Zones.PanicBelow > pl.Zones.SpillBelow {
			v.add(p+".zones.panic_below", "%g is above spill_below %g; the pool would panic before it spills", pl.Zones.PanicBelow, pl.Zones.SpillBelow)
		}
		v.nonNegative(p+".queue.size", pl.Queue.Size)
		if pl.Queue.Size > 0 && pl.Queue.Timeout == 0 {
			v.add(p+".queue.timeout", "must be more than 0 when queue.size is set")
		}
		v.health(p+".health", pl.Health)
		v.nonNegative(p+".max_idle_conns_per_backend", pl.MaxIdleConnsPerBackend)
		v.poolTLS(p, pl)
		v.backendSource(p, pl)
	}
	for i, pl := range v.c.Pools {
		if pl.BackupPool == "" {
			continue
		}
		path := fmt.Sprintf("pools[%d].backup_pool", i)
		if pl.BackupPool == pl.Name {
			v.add(path, "%q is this pool: name another one", pl.BackupPool)
		} else if _, ok := names[pl.BackupPool]; !ok {
			v.add(path, "no pool named %q", pl.BackupPool)
		}
	}
}

func (v *validator) timeouts(p string, t Timeouts) {
	if t.Connect == 0 {
		v.add(p+".connect", "must be more than 0")
	}
	if t.Request == 0 {
		v.add(p+".request", "must be more than 0")
	}
	fixed := t.PerTry.Mode == PerTryFixed
	if fixed && t.PerTry.Fixed > t.Request && t.Request > 0 {
		v.add(p+".per_try", "%v is longer than request %v", t.PerTry.Fixed, t.Request)
	}
	if t.Connect > t.Request && t.Request > 0 {
		v.add(p+".connect", "%v is longer than request %v", t.Connect, t.Request)
	}
}

func (v *validator) retry(p string, r Retry) {
	if r.Attempts < 1 || r.Attempts > maxAttempts {
		v.add(p+".attempts", "%d is outside 1..%d (1 means no retries)", r.Attempts, maxAttempts)
	}
	seen := map[string]int{}
	for i, on := range r.On {
		ip := fmt.Sprintf("%s.on[%d]", p, i)
		if first, dup := seen[on]; dup {
			v.add(ip, "%q is already on[%d]", on, first)
			continue
		}
		seen[on] = i
		switch on {
		case RetryOnConnectFailure, RetryOnTimeout, RetryOnReset:
			continue
		}
		if n, ok := statusCode(on); ok {
			if n < 400 {
				v.add(ip, "status %d is not an error; retry on 4xx or 5xx", n)
			}
			continue
		}
		v.add(ip, "%q: want connect_failure, timeout, reset or an HTTP status such as \"503\"", on)
	}
	if r.IdempotencyHeader != "" && !validHeaderName(r.IdempotencyHeader) {
		v.add(p+".idempotency_header", "%q is not a valid header name", r.IdempotencyHeader)
	}
	if r.MaxBody < 0 {
		v.add(p+".max_body", "is negative")
	}
	v.percent(p+".budget.percent", r.Budget.Percent)
	v.nonNegative(p+".budget.min_per_second", r.Budget.MinPerSecond)
	if r.Budget.Window < time.Second {
		v.add(p+".budget.window", "%v is shorter than 1s; a budget counts retries over seconds", r.Budget.Window)
	}
}

func (v *validator) health(p string, h Health) {
	if a := h.Active; a != nil {
		ap := p + ".active"
		if !strings.HasPrefix(a.Path, "/") {
			v.add(ap+".path", "%q must start with /", a.Path)
		}
		if a.Host != "" && strings.ContainsAny(a.Host, " /\t\r\n") {
			v.add(ap+".host", "%q is not a valid host", a.Host)
		}
		if _, _, ok := parseStatusRange(a.ExpectStatus); !ok {
			v.add(ap+".expect_status", "%q: want a range of 3-digit codes such as 200-399, or one code", a.ExpectStatus)
		}
		if a.Interval == 0 {
			v.add(ap+".interval", "must be more than 0")
		}
		if a.Timeout == 0 {
			v.add(ap+".timeout", "must be more than 0")
		} else if a.Timeout > a.Interval && a.Interval > 0 {
			v.add(ap+".timeout", "%v is longer than interval %v", a.Timeout, a.Interval)
		}
		if a.Rise < 1 {
			v.add(ap+".rise", "must be at least 1")
		}
		if a.Fall < 1 {
			v.add(ap+".fall", "must be at least 1")
		}
	}
	pp := p + ".passive"
	v.nonNegative(pp+".consecutive_failures", h.Passive.ConsecutiveFailures)
	if h.Passive.ConsecutiveFailures > 0 && h.Passive.Ejection == 0 {
		v.add(pp+".ejection", "must be more than 0 while consecutive_failures is on")
	}
	v.percent(pp+".max_ejected_percent", h.Passive.MaxEjectedPercent)
	seen := map[int]int{}
	for i, code := range h.Passive.Statuses {
		sp := fmt.Sprintf("%s.statuses[%d]", pp, i)
		if first, dup := seen[code]; dup {
			v.add(sp, "%d is already statuses[%d]", code, first)
		}
		seen[code] = i
		if code < 400 || code > 599 {
			v.add(sp, "%d is not an error status; want 400-599", code)
		}
	}
}

func (v *validator) poolTLS(p string, pl Pool) {
	switch {
	case pl.Protocol == ProtocolH2C && pl.TLS != nil:
		v.add(p+".tls", "protocol h2c is cleartext; use protocol h2 with tls")
	case pl.Protocol == ProtocolH2 && pl.TLS == nil:
		v.add(p+".protocol", "h2 runs over TLS; add a tls block (tls: {} for system roots) or use h2c")
	}
	if t := pl.TLS; t != nil {
		v.file(p+".tls.ca_file", t.CAFile)
		v.certPair(p+".tls", t.CertFile, t.KeyFile)
		if t.ServerName != "" && !validHostname(t.ServerName) {
			v.add(p+".tls.server_name", "%q is not a valid host name", t.ServerName)
		}
	}
}

// backendSource checks that a pool has exactly one source of backends and
// that the source is usable.
func (v *validator) backendSource(p string, pl Pool) {
	switch {
	case pl.Consul != nil && len(pl.Backends) > 0:
		v.add(p+".consul", "a pool takes its backends from either backends or consul, not both")
	case pl.Consul == nil && len(pl.Backends) == 0:
		v.add(p, "no backends: list backends or set consul")
	}
	if cs := pl.Consul; cs != nil {
		cp := p + ".consul"
		if v.c.Consul == nil {
			v.add(cp, "needs the top-level consul block that says how to reach the agent")
		}
		if cs.Service == "" {
			v.add(cp+".service", "missing; name the Consul service")
		}
		if v.c.Zone != "" && cs.ZoneMeta == "" && cs.ZoneTagPrefix == "" {
			v.add(cp, "set zone_meta or zone_tag_prefix so backends have a zone (the proxy's zone is %q)", v.c.Zone)
		}
	}
	seen := map[string]int{}
	for i, b := range pl.Backends {
		bp := fmt.Sprintf("%s.backends[%d]", p, i)
		if b.Address == "" {
			v.add(bp+".address", "missing; want host:port")
		} else {
			v.backendAddress(bp+".address", b.Address, pl)
			key := b.Address
			if !strings.HasPrefix(key, unixPrefix) {
				key = strings.ToLower(key) // host names are not case-sensitive, paths are
			}
			if first, dup := seen[key]; dup {
				v.add(bp+".address", "%s is already backends[%d]", b.Address, first)
			}
			seen[key] = i
		}
		switch {
		case b.Zone == "" && v.c.Zone != "":
			v.add(bp+".zone", "missing; the proxy has zone %q, so every backend needs one", v.c.Zone)
		case b.Zone != "" && !validName(b.Zone):
			v.add(bp+".zone", "%q: use letters, digits, '-', '_' and '.'", b.Zone)
		}
		v.nonNegative(bp+".weight", b.Weight)
		v.nonNegative(bp+".max_conns", b.MaxConns)
	}
	v.namedTLS(p, pl)
	if pl.DNSRefresh < time.Second {
		v.add(p+".dns_refresh", "%v is shorter than 1s; names are resolved again at this interval", pl.DNSRefresh)
	}
}

// namedTLS checks that a TLS pool whose backends include host names says
// which name the certificates must carry: a name is dialled at each
// address it resolves to, so the address gives no name to check. With one
// name among the backends, tls.server_name defaults to it (defaults.go);
// with several, it must be written.
func (v *validator) namedTLS(p string, pl Pool) {
	if pl.TLS == nil || pl.TLS.ServerName != "" {
		return
	}
	for i, b := range pl.Backends {
		if name, ok := backendName(b.Address); ok {
			v.add(p+".tls.server_name", "missing: backends[%d] is the host name %s and another backend names another host; name the certificate to check", i, name)
			return
		}
	}
}

// oneBackendName returns the host name the backends name, when they name
// exactly one (IP addresses and sockets aside).
func oneBackendName(bs []Backend) (string, bool) {
	name := ""
	for _, b := range bs {
		n, ok := backendName(b.Address)
		if !ok {
			continue
		}
		if name != "" && !strings.EqualFold(n, name) {
			return "", false
		}
		name = n
	}
	return name, name != ""
}

// backendName returns the host of a backend address that is a name, not
// an IP address or a Unix socket.
func backendName(addr string) (string, bool) {
	if strings.HasPrefix(addr, unixPrefix) {
		return "", false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", false
	}
	return host, true
}

// unixPrefix starts a backend address that names a Unix domain socket.
const unixPrefix = "unix:"

// maxUnixPath is the longest socket path Linux takes: sun_path's 108
// bytes less the terminating NUL.
const maxUnixPath = 107

// backendAddress checks a file backend's address: host:port, the host an
// IP address or a name, or unix: and a socket's absolute path. A socket
// backend speaks HTTP/1.1 (net/http's HTTP/2 client, which h2 and h2c
// pools use, keeps no connection it dialled to a socket), and TLS over it
// needs the name to check, which the address does not give.
func (v *validator) backendAddress(path, addr string, pl Pool) {
	sock, ok := strings.CutPrefix(addr, unixPrefix)
	if !ok {
		v.address(path, addr, false)
		return
	}
	switch {
	case !filepath.IsAbs(sock):
		v.add(path, "%q: the socket's path must be absolute, as in unix:/run/app.sock", addr)
	case len(sock) > maxUnixPath:
		v.add(path, "%q: the socket's path has %d bytes, more than the %d a Unix socket address holds", addr, len(sock), maxUnixPath)
	}
	if pl.Protocol != ProtocolHTTP1 {
		v.add(path, "%q: a Unix socket backend needs protocol http1, not %s", addr, pl.Protocol)
	}
	if pl.TLS != nil && pl.TLS.ServerName == "" {
		v.add(path, "%q: TLS over a Unix socket needs tls.server_name: the address has no host name to check", addr)
	}
}

// affinity checks hash_key against balance, and the sticky cookie.
func (v *validator) affinity(p string, pl Pool) {
	hp := p + ".hash_key"
	switch k := pl.HashKey; {
	case k == nil && pl.Balance == BalanceHash:
		v.add(p+".balance", "hash needs hash_key: {header: NAME}, {cookie: NAME} or {source: client_address}")
	case k != nil && pl.Balance != BalanceHash:
		v.add(hp, "is only for balance hash, not %s", pl.Balance)
	case k != nil:
		set := 0
		for _, s := range []string{k.Header, k.Cookie, k.Source} {
			if s != "" {
				set++
			}
		}
		if set != 1 {
			v.add(hp, "set exactly one of header, cookie and source (%d set)", set)
		}
		if k.Header != "" && !validHeaderName(k.Header) {
			v.add(hp+".header", "%q is not a valid header name", k.Header)
		}
		if k.Cookie != "" && !validHeaderName(k.Cookie) {
			v.add(hp+".cookie", "%q is not a valid cookie name", k.Cookie)
		}
		if k.Source != "" {
			oneOf(v, hp+".source", k.Source, HashSourceClientAddress)
		}
	}
	if s := pl.Sticky; s != nil {
		switch {
		case s.Cookie == "":
			v.add(p+".sticky.cookie", "missing; name the cookie that pins a client to its backend")
		case !validHeaderName(s.Cookie):
			v.add(p+".sticky.cookie", "%q is not a valid cookie name", s.Cookie)
		}
		if s.TTL < 0 {
			v.add(p+".sticky.ttl", "is negative")
		}
	}
}
