package configs

import "time"

// Pool is a group of interchangeable backends with its balancing, timeout,
// retry, zone and health policy. Its backends come either from the file
// (Backends) or from Consul (Consul), never both.
type Pool struct {
	// Name identifies the pool in routes, metrics and logs.
	Name string `yaml:"name"`
	// BackupPool names another pool (typically the other region's
	// proxies, over TLS) that takes this pool's requests when it has no
	// healthy backend in any zone, before panic mode, and those whose
	// attempts here ended with no answer when a retry would have been
	// allowed. A request crosses once: it carries the Azimuth-Region-Hop
	// header, and a proxy never sends such a request to a backup pool of
	// its own. Empty: none.
	BackupPool string `yaml:"backup_pool"`
	// Balance is how a backend is chosen inside the zone that zone
	// preference, spill and panic settled on: least_conn (default: the
	// fewest in-flight requests per unit of weight), round_robin (smooth
	// weighted, as nginx), random (weighted), p2c (two weighted draws,
	// the one with fewer requests in flight wins) or hash (consistent
	// hashing of HashKey over a Maglev table, within the chosen zone; a
	// request without the key is balanced as least_conn). Health,
	// drains, max_conns, slow start and retries to another zone apply to
	// every policy.
	Balance string `yaml:"balance"`
	// HashKey is what balance hash hashes; required with hash, not
	// allowed with another policy.
	HashKey *HashKey `yaml:"hash_key"`
	// Sticky, when set, pins each client to a backend with a cookie,
	// under any policy.
	Sticky *Sticky `yaml:"sticky"`
	// SlowStart ramps a newly healthy backend's share of traffic up over
	// this long. Default 0 (off): least_conn already sends less to a slow
	// backend, and a ramp changes traffic shares in ways an operator should
	// choose.
	SlowStart time.Duration `yaml:"slow_start"`
	// Protocol to the backends: http1 (default), h2c (HTTP/2 cleartext,
	// prior knowledge) or h2 (HTTP/2 over TLS).
	Protocol string `yaml:"protocol"`
	// SendProxyProtocol, v1 or v2, begins every connection to a backend
	// with a PROXY protocol header naming the request's client; a
	// connection then carries only that client's requests. "" (default)
	// sends none. http1 pools only.
	SendProxyProtocol string `yaml:"send_proxy_protocol"`
	// Timeouts bound connecting, each attempt and the whole request.
	Timeouts Timeouts `yaml:"timeouts"`
	// Retry decides which failures are tried again elsewhere.
	Retry Retry `yaml:"retry"`
	// Hedge, when set, starts a second attempt of a slow replayable
	// request in another zone after a delay (see Hedge). Nil: off.
	Hedge *Hedge `yaml:"hedge"`
	// Zones sets when traffic spills out of the local zone.
	Zones Zones `yaml:"zones"`
	// Queue lets requests wait briefly when every backend is at max_conns.
	Queue Queue `yaml:"queue"`
	// Health is the active and passive health checking.
	Health Health `yaml:"health"`
	// Backends are listed in the file.
	Backends []Backend `yaml:"backends"`
	// DNSRefresh is how often the host names among Backends are resolved
	// again (default 30s). It is an interval, not the records' TTL: Go's
	// resolver does not tell TTLs. Unused when every backend is an IP
	// address or a Unix socket.
	DNSRefresh time.Duration `yaml:"dns_refresh"`
	// Consul, when set, makes the backends come from a Consul service.
	Consul *PoolConsul `yaml:"consul"`
	// TLS, when set, makes connections to the backends use TLS. Required
	// for protocol h2; not allowed with h2c.
	TLS *PoolTLS `yaml:"tls"`
	// MaxIdleConnsPerBackend is how many idle keep-alive connections to
	// keep to each backend (default 64; Go's own default of 2 makes a busy
	// proxy reconnect constantly). 0 keeps none.
	MaxIdleConnsPerBackend int `yaml:"max_idle_conns_per_backend"`
}

// HashKey names the one part of a request that balance hash hashes:
// exactly one of Header, Cookie or Source. A key that leaves a backend's
// reach (down, drained, at max_conns, already tried by the request) goes
// to the next backend in the table's order, the same one every time.
type HashKey struct {
	// Header hashes the value of this request header.
	Header string `yaml:"header"`
	// Cookie hashes the value of this request cookie.
	Cookie string `yaml:"cookie"`
	// Source hashes where the request came from; the one value is
	// client_address, the address of the client's connection
	// (X-Forwarded-For is not used: a client could choose its backend).
	Source string `yaml:"source"`
}

// Sticky pins a client to the backend that served it: the proxy sets a
// cookie naming the backend (an opaque hash of its address) on a response
// to a request that had none, or whose backend could not take it, and a
// request that carries the cookie goes to that backend while it is
// available (up, not drained, below max_conns), in whatever zone.
// Otherwise the request is balanced by the pool's policy and the cookie
// names its new backend, so the client moves once. Retries still leave
// for another zone. An unknown or forged value is ignored.
type Sticky struct {
	// Cookie is the cookie's name.
	Cookie string `yaml:"cookie"`
	// TTL is the cookie's Max-Age; 0 (default) makes it a session cookie.
	TTL time.Duration `yaml:"ttl"`
}

// Timeouts bound the work done for one request.
type Timeouts struct {
	// Connect bounds a TCP (and TLS) connect to a backend (default 1s).
	Connect time.Duration `yaml:"connect"`
	// PerTry is how long an attempt of a replayable request waits for its
	// response headers before a second attempt starts in another zone.
	// The first attempt keeps running and the first headers win, so a
	// rare legitimately slow request still succeeds. "auto" (default)
	// learns it from the pool's latency: 3 × the p99 time to headers of
	// successful attempts over the last 10 s, between 20ms and 5s (at most
	// half of Request), 1s until 50 samples are in. A duration fixes it;
	// "off" (or 0) leaves only Request. A request that cannot be replayed
	// keeps its single attempt until Request whatever this says.
	PerTry PerTry `yaml:"per_try"`
	// Request bounds the whole request, all attempts included (default
	// 30s).
	Request time.Duration `yaml:"request"`
}

// Retry is the pool's retry policy. Only a request whose response has not
// started reaching the client, and which is safe to replay, is retried.
type Retry struct {
	// Attempts is the total number of tries, hedges included, the first
	// included (default 3; 1 means never retry or hedge; at most 10).
	Attempts int `yaml:"attempts"`
	// On lists retryable causes: connect_failure, timeout (a per-try
	// timeout: without it, an attempt past its per-try time only waits),
	// reset, or a 4xx/5xx status as a string ("503"). Default
	// [connect_failure, timeout, reset, "502", "503"].
	On []string `yaml:"on"`
	// IdempotencyHeader, when set, makes a non-idempotent request carrying
	// this header replayable. Empty (default) means only idempotent
	// methods are retried.
	IdempotencyHeader string `yaml:"idempotency_header"`
	// MaxBody is the largest request body buffered for replay (default
	// 64KiB). Only a replayable request (idempotent method or idempotency
	// key) is buffered, and only up to this; any other body streams to the
	// backend as it arrives and is not retried.
	MaxBody Size `yaml:"max_body"`
	// Budget caps retries and hedges over time.
	Budget Budget `yaml:"budget"`
}

// Budget keeps retries and hedges from multiplying load when every zone is
// failing, while leaving room for the burst a single zone's failure
// causes: each request deposits Percent/100 of a retry, each retry or
// hedge withdraws one, deposits and withdrawals expire after Window, and
// MinPerSecond retries per second are always allowed. It is measured over
// time, not over requests in flight: when a zone fails, nearly every
// request in flight is on it, so a share of those would refuse exactly
// the retries that save them.
type Budget struct {
	// Percent is the share of requests that may be retried or hedged,
	// 0..100 (default 20).
	Percent int `yaml:"percent"`
	// MinPerSecond is the floor: retries per second always allowed,
	// whatever the traffic (default 10).
	MinPerSecond int `yaml:"min_per_second"`
	// Window is how long deposits and withdrawals count (default 10s).
	Window time.Duration `yaml:"window"`
}

// Zones sets the zone preference thresholds, as fractions of the local
// zone's backends that are healthy.
type Zones struct {
	// SpillBelow: when the local zone's healthy share (or free capacity)
	// falls below this, traffic spreads to other zones in proportion
	// (default 0.7).
	SpillBelow float64 `yaml:"spill_below"`
	// PanicBelow: when the healthy share of the whole pool falls below
	// this, health is ignored and all backends share the traffic (default
	// 0.5). Must not exceed SpillBelow.
	PanicBelow float64 `yaml:"panic_below"`
}

// Queue lets a request wait for a free backend slot instead of failing at
// once when every backend is at its max_conns.
type Queue struct {
	// Size is how many requests may wait; 0 (default) means no queue.
	Size int `yaml:"size"`
	// Timeout is how long a request waits before it gets 503 (default 1s;
	// used only when Size > 0).
	Timeout time.Duration `yaml:"timeout"`
}

// Health is the pool's health checking.
type Health struct {
	// Active, when set, probes every backend over HTTP. Nil (no active
	// block) means no active checks: backends count as up until passive
	// detection ejects them.
	Active *ActiveHealth `yaml:"active"`
	// Passive is outlier detection on real traffic. An absent block gets
	// the defaults, so it is on; consecutive_failures: 0 turns it off.
	Passive PassiveHealth `yaml:"passive"`
}

// ActiveHealth is an HTTP probe sent to each backend.
type ActiveHealth struct {
	// Path requested (default "/").
	Path string `yaml:"path"`
	// Host header sent; empty means the backend's address (localhost for
	// a Unix socket).
	Host string `yaml:"host"`
	// ExpectStatus is the passing status range, "200-399" (default) or a
	// single code such as "204".
	ExpectStatus string `yaml:"expect_status"`
	// Interval between probes of one backend (default 2s).
	Interval time.Duration `yaml:"interval"`
	// Timeout of one probe (default 1s); at most Interval.
	Timeout time.Duration `yaml:"timeout"`
	// Rise is how many passes in a row bring a backend up (default 2).
	Rise int `yaml:"rise"`
	// Fall is how many failures in a row take it down (default 3).
	Fall int `yaml:"fall"`
}

// StatusRange returns the inclusive bounds of ExpectStatus. It returns
// false if ExpectStatus does not parse; Load rejects such a file.
func (a ActiveHealth) StatusRange() (lo, hi int, ok bool) {
	return parseStatusRange(a.ExpectStatus)
}

// PassiveHealth ejects a backend that fails real requests.
type PassiveHealth struct {
	// ConsecutiveFailures ejects a backend after this many failed requests
	// in a row (default 5; 0 turns passive detection off).
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// Ejection is the first ejection's length (default 5s). When it ends,
	// the backend gets one trial request (a replayable one, which hedges
	// away if the backend still hangs): it comes back if that succeeds and
	// stays out for another ejection length if not. A backend that fails
	// again soon after it came back is ejected for longer (n × ejection,
	// at most 10×).
	Ejection time.Duration `yaml:"ejection"`
	// MaxEjectedPercent caps the share of the pool ejected at once
	// (0..100, default 50), so detection cannot empty a pool.
	MaxEjectedPercent int `yaml:"max_ejected_percent"`
	// Statuses are the response codes that count as a failed attempt
	// (default [500, 502, 503, 504]), whatever retry.on says. Connect
	// failures, resets and per-try timeouts always count. An empty list
	// counts no status.
	Statuses []int `yaml:"statuses"`
	// PenaltyHalfLife is how fast the soft penalty of a failed request
	// fades (default 1s; 0 turns penalties off). Each failure in a row
	// makes the backend look 2, 4, 8, ... connections busier to
	// least-connections, halving every PenaltyHalfLife and ending at its
	// next success, so traffic leaves a backend that has just timed out
	// long before it has failed ConsecutiveFailures times. It works
	// whether or not ejection is on.
	PenaltyHalfLife time.Duration `yaml:"penalty_half_life"`
}

// Backend is one server listed in the file, or a host name that stands
// for several.
type Backend struct {
	// Address is host:port, or unix:/absolute/path for a Unix domain
	// socket (protocol http1 only). An IP address or a socket is one
	// backend, and the address is its identity within the pool (in
	// /status, metrics and drains). A host name stands for one backend per
	// address it resolves to (IPv4 and IPv6), each with its own health
	// and counters, identified by ip:port and taking this entry's zone,
	// weight and max_conns; it is resolved again every dns_refresh. A name
	// that stops resolving keeps its last addresses (the error is logged
	// and shown in /status); one that never resolved gives no backend.
	Address string `yaml:"address"`
	// Zone the backend runs in; required when the proxy has a zone.
	Zone string `yaml:"zone"`
	// Weight scales its share of traffic (default 1; 0 takes none).
	Weight int `yaml:"weight"`
	// MaxConns caps its concurrent requests; 0 (default) is no cap.
	MaxConns int `yaml:"max_conns"`
}

// PoolConsul reads a pool's backends from the healthy instances of a Consul
// service.
type PoolConsul struct {
	// Service is the Consul service name.
	Service string `yaml:"service"`
	// Tags keeps only instances carrying all of them.
	Tags []string `yaml:"tags"`
	// ZoneMeta is the service (then node) metadata key holding the zone,
	// e.g. "az".
	ZoneMeta string `yaml:"zone_meta"`
	// ZoneTagPrefix reads the zone from a tag with this prefix, e.g. "az="
	// for a tag "az=us-east-1a". Used when ZoneMeta finds nothing.
	ZoneTagPrefix string `yaml:"zone_tag_prefix"`
	// WeightMeta is the service metadata key holding the weight; empty
	// means weight 1.
	WeightMeta string `yaml:"weight_meta"`
	// IncludeWarning also takes instances whose checks are warning.
	IncludeWarning bool `yaml:"include_warning"`
}

// PoolTLS is the TLS client setup towards a pool's backends.
type PoolTLS struct {
	// CAFile verifies the backends; empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name sent in SNI and checked in the certificate;
	// empty means the backend's host.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are a client certificate, both or neither.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the client certificate's private key.
	KeyFile string `yaml:"key_file"`
}

// Values accepted by the pool's enumerated keys.
const (
	BalanceLeastConn  = "least_conn"
	BalanceRoundRobin = "round_robin"
	BalanceRandom     = "random"
	BalanceP2C        = "p2c"
	BalanceHash       = "hash"

	HashSourceClientAddress = "client_address"

	ProtocolHTTP1 = "http1"
	ProtocolH2C   = "h2c"
	ProtocolH2    = "h2"

	RetryOnConnectFailure = "connect_failure"
	RetryOnTimeout        = "timeout"
	RetryOnReset          = "reset"
)
