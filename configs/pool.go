package configs

import "time"

// Pool is a group of interchangeable backends with its balancing, timeout,
// retry, zone and health policy. Its backends come either from the file
// (Backends) or from Consul (Consul), never both.
type Pool struct {
	// Name identifies the pool in routes, metrics and logs.
	Name string `yaml:"name"`
	// Balance is the selection policy; only least_conn (weighted
	// least in-flight) for now, which is the default.
	Balance string `yaml:"balance"`
	// SlowStart ramps a newly healthy backend's share of traffic up over
	// this long. Default 0 (off): least_conn already sends less to a slow
	// backend, and a ramp changes traffic shares in ways an operator should
	// choose.
	SlowStart time.Duration `yaml:"slow_start"`
	// Protocol to the backends: http1 (default), h2c (HTTP/2 cleartext,
	// prior knowledge) or h2 (HTTP/2 over TLS).
	Protocol string `yaml:"protocol"`
	// Timeouts bound connecting, each attempt and the whole request.
	Timeouts Timeouts `yaml:"timeouts"`
	// Retry decides which failures are tried again elsewhere.
	Retry Retry `yaml:"retry"`
	// Zones sets when traffic spills out of the local zone.
	Zones Zones `yaml:"zones"`
	// Queue lets requests wait briefly when every backend is at max_conns.
	Queue Queue `yaml:"queue"`
	// Health is the active and passive health checking.
	Health Health `yaml:"health"`
	// Backends are listed in the file.
	Backends []Backend `yaml:"backends"`
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

// Timeouts bound the work done for one request.
type Timeouts struct {
	// Connect bounds a TCP (and TLS) connect to a backend (default 1s).
	Connect time.Duration `yaml:"connect"`
	// PerTry bounds one attempt up to the response headers; on expiry the
	// attempt may be retried. Default 0: no per-try limit, only Request.
	PerTry time.Duration `yaml:"per_try"`
	// Request bounds the whole request, all attempts included (default
	// 30s).
	Request time.Duration `yaml:"request"`
}

// Retry is the pool's retry policy. Only a request whose response has not
// started reaching the client, and which is safe to replay, is retried.
type Retry struct {
	// Attempts is the total number of tries, the first included (default
	// 3; 1 means never retry; at most 10).
	Attempts int `yaml:"attempts"`
	// On lists retryable causes: connect_failure, timeout, reset, or a
	// 4xx/5xx status as a string ("503"). Default [connect_failure,
	// timeout, reset].
	On []string `yaml:"on"`
	// IdempotencyHeader, when set, makes a non-idempotent request carrying
	// this header replayable. Empty (default) means only idempotent
	// methods are retried.
	IdempotencyHeader string `yaml:"idempotency_header"`
	// MaxBody is the largest request body buffered for replay (default
	// 64KiB); a larger body is streamed and not retried.
	MaxBody Size `yaml:"max_body"`
	// Budget caps retries as a share of live requests.
	Budget Budget `yaml:"budget"`
}

// Budget keeps retries from multiplying load during an outage: retries in
// flight may be at most Percent of requests in flight, but MinConcurrency
// retries are always allowed.
type Budget struct {
	// Percent is 0..100 (default 20).
	Percent int `yaml:"percent"`
	// MinConcurrency is the floor of concurrent retries (default 3).
	MinConcurrency int `yaml:"min_concurrency"`
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
	// Host header sent; empty means the backend's address.
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
	// Ejection is the first ejection's length (default 30s); repeated
	// ejections back off from it.
	Ejection time.Duration `yaml:"ejection"`
	// MaxEjectedPercent caps the share of the pool ejected at once
	// (0..100, default 50), so detection cannot empty a pool.
	MaxEjectedPercent int `yaml:"max_ejected_percent"`
	// PenaltyHalfLife is how fast the soft penalty of a failed request
	// fades (default 1s; 0 turns penalties off). Each failure in a row
	// makes the backend look 2, 4, 8, ... connections busier to
	// least-connections, halving every PenaltyHalfLife and ending at its
	// next success, so traffic leaves a backend that has just timed out
	// long before it has failed ConsecutiveFailures times. It works
	// whether or not ejection is on.
	PenaltyHalfLife time.Duration `yaml:"penalty_half_life"`
}

// Backend is one server listed in the file.
type Backend struct {
	// Address is host:port; its identity within the pool.
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
	BalanceLeastConn = "least_conn"

	ProtocolHTTP1 = "http1"
	ProtocolH2C   = "h2c"
	ProtocolH2    = "h2"

	RetryOnConnectFailure = "connect_failure"
	RetryOnTimeout        = "timeout"
	RetryOnReset          = "reset"
)
