package configs

import "time"

// Config is one generation of the config file, fully defaulted, with every
// relative file path resolved against the file's directory. It is built by
// Load or Parse and never written afterwards.
type Config struct {
	// Zone is this proxy's own availability zone, preferred for traffic. If
	// empty in the file, it is taken from the AZIMUTH_ZONE environment
	// variable; if both are empty, zone preference is off.
	Zone string `yaml:"zone"`
	// Admin is the loopback listener for metrics, health and status.
	Admin Admin `yaml:"admin"`
	// Consul is the agent that pools with a consul block read backends
	// from. Nil when the file has no consul block.
	Consul *Consul `yaml:"consul"`
	// Log sets the process log and the access log.
	Log Log `yaml:"log"`
	// Shutdown sets how SIGTERM and SIGINT drain the proxy.
	Shutdown Shutdown `yaml:"shutdown"`
	// Runtime tunes the Go runtime the proxy runs on.
	Runtime Runtime `yaml:"runtime"`
	// Readiness sets when /readyz fails, the signal a DNS health check
	// uses to fail this region over.
	Readiness Readiness `yaml:"readiness"`
	// Overrides sets where operator overrides (drains, enables and
	// evacuation made through the admin API) are kept: in a state file so
	// they survive a restart, and with Consul, shared by every proxy of
	// the region.
	Overrides Overrides `yaml:"overrides"`
	// Listeners are the sockets clients connect to. At least one.
	Listeners []Listener `yaml:"listeners"`
	// Pools are the groups of backends routes send traffic to.
	Pools []Pool `yaml:"pools"`

	// Source is the absolute path of the file this came from, for logs and
	// the admin status.
	Source string `yaml:"-"`
	// Hash is the hex SHA-256 of the file's bytes, so the admin status and
	// the reload metric can say exactly which file is running.
	Hash string `yaml:"-"`

	// index maps key paths to the lines they were written on.
	index *index
}

// Admin is the admin listener: /metrics, /healthz, /readyz, /status and,
// when enabled, /debug/pprof/.
type Admin struct {
	// Address is host:port; loopback by default (127.0.0.1:9901) because
	// the admin API can drain backends.
	Address string `yaml:"address"`
	// TokenFile holds a bearer token required by every admin endpoint
	// but /healthz and /readyz. Empty means none is required, which is
	// only allowed on loopback: validation refuses an admin address that
	// is not loopback without it.
	TokenFile string `yaml:"token_file"`
	// Tokens are named tokens, each in a file, accepted beside TokenFile
	// (whose name is "default"): every state-changing admin call is
	// logged with the name of the token that made it.
	Tokens []AdminToken `yaml:"tokens"`
	// Pprof serves net/http/pprof under /debug/pprof/. Off by default.
	Pprof bool `yaml:"pprof"`
}

// AdminToken is one named admin token.
type AdminToken struct {
	// Name says who holds the token, in the log of admin calls.
	Name string `yaml:"name"`
	// File holds the token: its first line, trimmed.
	File string `yaml:"file"`
}

// Readiness sets when the proxy reports itself not ready: /readyz then
// answers 503, and a DNS provider's health check fails the region over.
// It also fails while the proxy drains and while an operator has
// evacuated it (POST /evacuate on the admin API).
type Readiness struct {
	// MinHealthyShare is the share (0 to 1) of a pool's backends that
	// must be able to take requests for the pool to count as serving.
	// Default 0: only a pool with no available backend fails readiness.
	// 0.5 fails it when fewer than half are available.
	MinHealthyShare float64 `yaml:"min_healthy_share"`
	// Pools names the pools that count; empty (the default) means all.
	Pools []string `yaml:"pools"`
	// Address, when set, is a listener of its own that serves only GET
	// /readyz and /healthz, so that a health checker outside can reach
	// readiness without the admin API being exposed. Read at start, like
	// admin.address.
	Address string `yaml:"address"`
}

// Consul is how to reach the Consul agent.
type Consul struct {
	// Address is the agent's host:port (default 127.0.0.1:8500).
	Address string `yaml:"address"`
	// Datacenter to query; empty means the agent's own.
	Datacenter string `yaml:"datacenter"`
	// TokenFile holds the ACL token; empty means no token.
	TokenFile string `yaml:"token_file"`
	// TLS, when set, makes the connection to the agent HTTPS.
	TLS *ConsulTLS `yaml:"tls"`
	// CacheDir keeps each Consul pool's last backend set on disk
	// (consul-POOL.json), so that a proxy started while the agent cannot
	// be reached serves the last known backends, marked from_cache in
	// /status, until the agent answers. Default: $STATE_DIRECTORY (set by
	// systemd's StateDirectory=) when set, else none: no cache.
	CacheDir string `yaml:"cache_dir"`
}

// Overrides is where operator overrides are kept.
type Overrides struct {
	// File holds the overrides in force, rewritten whole on each change
	// and read at start, so a drain or an evacuation survives a restart.
	// With Consul sharing on, it holds the region's last known overrides,
	// applied at start until the agent answers. Default:
	// $STATE_DIRECTORY/overrides.json when STATE_DIRECTORY is set
	// (systemd's StateDirectory=; the container image sets it), else none:
	// overrides then last as long as the process.
	File string `yaml:"file"`
	// ConsulPrefix is the KV prefix under which the proxies of a region
	// share their overrides when the config has a consul block: a drain,
	// an enable or an evacuation made through any one proxy's admin API
	// applies to every proxy watching the prefix within a second, and
	// outlives their restarts. Default azimuth/overrides/; regions that
	// share a Consul datacenter need one prefix each. "off" keeps
	// overrides to this proxy (and its file).
	ConsulPrefix string `yaml:"consul_prefix"`
}

// OverridesNotShared is the consul_prefix that keeps overrides local.
const OverridesNotShared = "off"

// ConsulTLS is the TLS client setup for the Consul agent.
type ConsulTLS struct {
	// CAFile verifies the agent's certificate; empty means system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate, both or neither.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the client certificate's private key.
	KeyFile string `yaml:"key_file"`
	// ServerName overrides the name checked in the agent's certificate.
	ServerName string `yaml:"server_name"`
}

// Log sets the process log (log/slog) and the access log.
type Log struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is json or text (default json), for both logs.
	Format string `yaml:"format"`
	// AccessLog is the one line per request.
	AccessLog AccessLog `yaml:"access_log"`
}

// AccessLog is where request lines go and how many successful ones.
type AccessLog struct {
	// Output is "stdout" (default), "stderr", "off", or a file path,
	// resolved against the config file's directory and appended to.
	Output string `yaml:"output"`
	// SampleSuccess is the fraction (0..1) of successful requests logged;
	// failed requests are always logged. Default 1 (all).
	SampleSuccess float64 `yaml:"sample_success"`
	// FlushInterval gathers lines and writes them together: at most this
	// long after the first one waits, at once when 4KiB wait, and at once
	// on SIGUSR1, SIGHUP, the start of a drain and exit, so no request
	// pays a system call for its line and a clean stop loses none. A
	// crash loses the lines still waiting: at most this interval's or
	// 4KiB's worth. 0 writes each line as its request ends. Read at
	// start. Default 100ms, at most 10s.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// Shutdown sets the drain on SIGTERM and SIGINT: /readyz fails at once, the
// listeners keep serving for DrainDelay so DNS failover and load balancers
// in front notice, then they close and in-flight requests get Grace to
// finish.
type Shutdown struct {
	// DrainDelay is how long to keep serving after readiness fails
	// (default 5s).
	DrainDelay time.Duration `yaml:"drain_delay"`
	// Grace bounds how long in-flight requests may take after listeners
	// close (default 30s).
	Grace time.Duration `yaml:"grace"`
}

// Runtime tunes the Go runtime. It applies at start and on every reload.
type Runtime struct {
	// MemoryLimit is a soft limit on the memory the Go runtime holds
	// (heap, goroutine stacks, its own structures; not the binary), as
	// GOMEMLIMIT sets it: near the limit the garbage collector runs more
	// often instead of letting the heap grow to twice what is live, which
	// is what makes a Go process's peak memory about double its live
	// memory. "0" (the default) keeps the GOMEMLIMIT environment variable;
	// without it, 80% of the memory limit of the process's cgroup, if it
	// has one; else no limit. Leave room above the live memory the expected
	// connections need (roughly 30 KiB per busy client connection): with
	// live memory at the limit the collector takes up to half the CPU.
	// At least 16MiB when set.
	MemoryLimit Size `yaml:"memory_limit"`
	// GCPercent paces the garbage collector, as GOGC does: a cycle starts
	// once the heap has grown by this percentage over what the last cycle
	// left live. A proxy's live heap is small (a few MiB at tens of busy
	// connections), so at Go's 100 the collector runs many times a second
	// under load; a larger number spends memory to save that CPU. "off"
	// leaves the pace to memory_limit alone, which it then requires: the
	// heap fills up to the limit before each cycle. Absent keeps the GOGC
	// environment variable; without it, 400 under a memory limit (from
	// any source), else 100. At least 10 when a number.
	GCPercent GCPercent `yaml:"gc_percent"`
}

// MinMemoryLimit is the smallest runtime.memory_limit accepted: below it
// the collector would run without pause.
const MinMemoryLimit = 16 << 20

// Access-log outputs with a special meaning; anything else is a file path.
const (
	AccessLogStdout = "stdout"
	AccessLogStderr = "stderr"
	AccessLogOff    = "off"
)
