package configs

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Defaults for keys an operator leaves out. They are applied in one place,
// applyDefaults, and only to absent keys: a key that is present keeps the
// value written, even zero, and is validated.
const (
	DefaultAdminAddress  = "127.0.0.1:9901"
	DefaultConsulAddress = "127.0.0.1:8500"
	// DefaultACMEDirectory is Let's Encrypt's production ACME directory.
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
	// DefaultACMEPrefix is the Consul KV prefix of shared ACME storage.
	DefaultACMEPrefix = "azimuth/acme/"
	// DefaultACMECheckInterval is how often certificates are checked for
	// renewal.
	DefaultACMECheckInterval = 10 * time.Minute
	// DefaultOverridesPrefix is the Consul KV prefix of shared overrides.
	DefaultOverridesPrefix = "azimuth/overrides/"
	DefaultClientSubject   = "X-Client-Subject"
	DefaultExpectStatus    = "200-399"
	DefaultMaxIdleConns    = 64
	DefaultRetryAttempts   = 3
	// DefaultAccessLogFlush is how long an access-log line may wait to be
	// written with others: short enough for an operator tailing the log,
	// long enough that a quiet proxy writes a few batches a second, while
	// under load the 4KiB batch fills first.
	DefaultAccessLogFlush = 100 * time.Millisecond
	// EnvZone is the environment variable read when the file has no zone.
	EnvZone = "AZIMUTH_ZONE"
)

// DefaultRetryOn is the retry.on list used when the key is absent.
func DefaultRetryOn() []string {
	return []string{RetryOnConnectFailure, RetryOnTimeout, RetryOnReset, "502", "503"}
}

// DefaultPassiveStatuses is the health.passive.statuses list used when the
// key is absent.
func DefaultPassiveStatuses() []int { return []int{500, 502, 503, 504} }

// defaulter sets a field to its default when its key is absent.
type defaulter struct{ ix *index }

func def[T any](d defaulter, path string, dst *T, v T) {
	if !d.ix.has(path) {
		*dst = v
	}
}

// applyDefaults fills every absent key of c with its default. getenv
// supplies the zone when the file has none.
func applyDefaults(c *Config, ix *index, getenv func(string) string) {
	d := defaulter{ix}
	if c.Zone == "" {
		c.Zone = getenv(EnvZone)
	}
	def(d, "admin.address", &c.Admin.Address, DefaultAdminAddress)
	// systemd may list several state directories, colon-separated.
	state, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":")
	if c.Consul != nil {
		def(d, "consul.address", &c.Consul.Address, DefaultConsulAddress)
		def(d, "consul.cache_dir", &c.Consul.CacheDir, state)
		def(d, "overrides.consul_prefix", &c.Overrides.ConsulPrefix, DefaultOverridesPrefix)
	}
	if state != "" {
		def(d, "overrides.file", &c.Overrides.File, filepath.Join(state, "overrides.json"))
	}
	def(d, "log.level", &c.Log.Level, "info")
	def(d, "log.format", &c.Log.Format, "json")
	def(d, "log.access_log.output", &c.Log.AccessLog.Output, AccessLogStdout)
	def(d, "log.access_log.sample_success", &c.Log.AccessLog.SampleSuccess, 1.0)
	def(d, "log.access_log.flush_interval", &c.Log.AccessLog.FlushInterval, DefaultAccessLogFlush)
	def(d, "shutdown.drain_delay", &c.Shutdown.DrainDelay, 5*time.Second)
	def(d, "shutdown.grace", &c.Shutdown.Grace, 30*time.Second)
	def(d, "runtime.memory_limit", &c.Runtime.MemoryLimit, 0)
	def(d, "runtime.gc_percent", &c.Runtime.GCPercent, 0)

	for i := range c.Listeners {
		l, p := &c.Listeners[i], fmt.Sprintf("listeners[%d]", i)
		if l.TLS != nil {
			def(d, p+".tls.min_version", &l.TLS.MinVersion, TLSVersion12)
			def(d, p+".tls.client_auth", &l.TLS.ClientAuth, ClientAuthNone)
			def(d, p+".tls.client_subject_header", &l.TLS.ClientSubjectHeader, DefaultClientSubject)
			if a := l.TLS.ACME; a != nil {
				acmeDefaults(d, c, p+".tls.acme", a, state, getenv)
			}
		}
		lp := p + ".limits"
		def(d, lp+".read_header_timeout", &l.Limits.ReadHeaderTimeout, 10*time.Second)
		def(d, lp+".read_timeout", &l.Limits.ReadTimeout, 60*time.Second)
		def(d, lp+".write_timeout", &l.Limits.WriteTimeout, 0)
		def(d, lp+".idle_timeout", &l.Limits.IdleTimeout, 120*time.Second)
		def(d, lp+".max_header_bytes", &l.Limits.MaxHeaderBytes, 64<<10)
		def(d, lp+".max_body", &l.Limits.MaxBody, 0)
		def(d, lp+".max_connections", &l.Limits.MaxConnections, 0)
		def(d, lp+".h2_max_concurrent_streams", &l.Limits.H2MaxConcurrentStreams, 250)
		def(d, lp+".h3_max_streams", &l.Limits.H3MaxStreams, 100)
		for j := range l.Routes {
			if rl := l.Routes[j].RateLimit; rl != nil {
				rateLimitDefaults(d, fmt.Sprintf("%s.routes[%d].rate_limit", p, j), rl)
			}
		}
	}

	for i := range c.Pools {
		pl, p := &c.Pools[i], fmt.Sprintf("pools[%d]", i)
		def(d, p+".balance", &pl.Balance, BalanceLeastConn)
		if pl.Sticky != nil {
			def(d, p+".sticky.ttl", &pl.Sticky.TTL, 0) // a session cookie
		}
		def(d, p+".slow_start", &pl.SlowStart, 0)
		def(d, p+".protocol", &pl.Protocol, ProtocolHTTP1)
		def(d, p+".timeouts.connect", &pl.Timeouts.Connect, time.Second)
		def(d, p+".timeouts.per_try", &pl.Timeouts.PerTry, PerTry{Mode: PerTryAuto})
		def(d, p+".timeouts.request", &pl.Timeouts.Request, 30*time.Second)
		def(d, p+".retry.attempts", &pl.Retry.Attempts, DefaultRetryAttempts)
		if pl.Hedge != nil {
			def(d, p+".hedge.delay", &pl.Hedge.Delay, HedgeDelay{Auto: true})
			def(d, p+".hedge.max", &pl.Hedge.Max, 1)
		}
		def(d, p+".retry.on", &pl.Retry.On, DefaultRetryOn())
		def(d, p+".retry.max_body", &pl.Retry.MaxBody, 64<<10)
		def(d, p+".retry.budget.percent", &pl.Retry.Budget.Percent, 20)
		def(d, p+".retry.budget.min_per_second", &pl.Retry.Budget.MinPerSecond, 10)
		def(d, p+".retry.budget.window", &pl.Retry.Budget.Window, 10*time.Second)
		def(d, p+".zones.spill_below", &pl.Zones.SpillBelow, 0.7)
		def(d, p+".zones.panic_below", &pl.Zones.PanicBelow, 0.5)
		def(d, p+".queue.size", &pl.Queue.Size, 0)
		def(d, p+".queue.timeout", &pl.Queue.Timeout, time.Second)
		if a := pl.Health.Active; a != nil {
			ap := p + ".health.active"
			def(d, ap+".path", &a.Path, "/")
			def(d, ap+".expect_status", &a.ExpectStatus, DefaultExpectStatus)
			def(d, ap+".interval", &a.Interval, 2*time.Second)
			def(d, ap+".timeout", &a.Timeout, time.Second)
			def(d, ap+".rise", &a.Rise, 2)
			def(d, ap+".fall", &a.Fall, 3)
		}
		pp := p + ".health.passive"
		def(d, pp+".consecutive_failures", &pl.Health.Passive.ConsecutiveFailures, 5)
		def(d, pp+".ejection", &pl.Health.Passive.Ejection, 5*time.Second)
		def(d, pp+".max_ejected_percent", &pl.Health.Passive.MaxEjectedPercent, 50)
		def(d, pp+".penalty_half_life", &pl.Health.Passive.PenaltyHalfLife, time.Second)
		def(d, pp+".statuses", &pl.Health.Passive.Statuses, DefaultPassiveStatuses())
		for j := range pl.Backends {
			def(d, fmt.Sprintf("%s.backends[%d].weight", p, j), &pl.Backends[j].Weight, 1)
		}
		def(d, p+".dns_refresh", &pl.DNSRefresh, 30*time.Second)
		if pl.TLS != nil {
			// Named backends are dialled at their addresses: the name
			// they share is the certificate's to check.
			if name, ok := oneBackendName(pl.Backends); ok {
				def(d, p+".tls.server_name", &pl.TLS.ServerName, name)
			}
		}
		def(d, p+".max_idle_conns_per_backend", &pl.MaxIdleConnsPerBackend, DefaultMaxIdleConns)
	}
}

// acmeDefaults fills a listener's acme block. Challenges default to both
// kinds when a plain listener can answer HTTP-01.
func acmeDefaults(d defaulter, c *Config, p string, a *ACME, state string, getenv func(string) string) {
	def(d, p+".directory", &a.Directory, DefaultACMEDirectory)
	def(d, p+".check_interval", &a.CheckInterval, DefaultACMECheckInterval)
	challenges := []string{ChallengeTLSALPN01}
	for _, l := range c.Listeners {
		if l.TLS == nil {
			challenges = []string{ChallengeHTTP01, ChallengeTLSALPN01}
			break
		}
	}
	def(d, p+".challenges", &a.Challenges, challenges)
	switch {
	case state != "":
		def(d, p+".storage", &a.Storage, filepath.Join(state, "acme"))
	case getenv("HOME") != "":
		def(d, p+".storage", &a.Storage, filepath.Join(getenv("HOME"), ".local", "share", "azimuth", "acme"))
	}
	if c.Consul != nil {
		def(d, p+".consul_prefix", &a.ConsulPrefix, DefaultACMEPrefix)
	}
}
