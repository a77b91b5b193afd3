package configs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimalYAML = `listeners:
  - name: http
    address: 127.0.0.1:8080
    routes:
      - pool: web
pools:
  - name: web
    backends:
      - address: 127.0.0.1:9001
`

func mustParse(t *testing.T, name, data string) *Config {
	t.Helper()
	c, err := Parse(name, []byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestExampleFilesLoad(t *testing.T) {
	t.Setenv(EnvZone, "")
	for _, name := range []string{"azimuth.yaml", "minimal.yaml"} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(name)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", name, err)
			}
			data, _ := os.ReadFile(name)
			sum := sha256.Sum256(data)
			if c.Hash != hex.EncodeToString(sum[:]) {
				t.Errorf("Hash = %s, want the file's sha256", c.Hash)
			}
			abs, _ := filepath.Abs(name)
			if c.Source != abs {
				t.Errorf("Source = %s, want %s", c.Source, abs)
			}
		})
	}
}

func TestFullExampleResolvesPathsAndKeepsValues(t *testing.T) {
	c, err := Load("azimuth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs(".")
	want := filepath.Join(dir, "example-tls", "example-cert.pem")
	if got := c.Listeners[1].TLS.Certificates[0].CertFile; got != want {
		t.Errorf("cert_file = %s, want %s resolved against the config's directory", got, want)
	}
	if got := c.Pools[1].TLS.CAFile; got != want {
		t.Errorf("pools[1].tls.ca_file = %s, want %s", got, want)
	}
	if c.Zone != "zone-a" || c.Consul == nil || c.Consul.Address != "127.0.0.1:8500" {
		t.Errorf("zone %q, consul %+v", c.Zone, c.Consul)
	}
	web := c.Pools[0]
	if web.Retry.On[4] != "503" || web.Backends[3].MaxConns != 100 || web.Backends[3].Weight != 2 {
		t.Errorf("web pool not decoded as written: %+v", web)
	}
	if got := c.Listeners[1].Limits.MaxBody; got != 10<<20 {
		t.Errorf("max_body = %v, want 10MiB", got)
	}
	if got := c.Listeners[1].TrustedPrefixes(); len(got) != 2 || got[0].String() != "127.0.0.1/32" || got[1].String() != "::1/128" {
		t.Errorf("TrustedPrefixes = %v", got)
	}
	if lo, hi, ok := web.Health.Active.StatusRange(); !ok || lo != 200 || hi != 399 {
		t.Errorf("StatusRange = %d, %d, %v", lo, hi, ok)
	}
	if l := c.Line("pools[1].consul.service"); l == 0 {
		t.Error("Line of pools[1].consul.service is unknown")
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv(EnvZone, "")
	c := mustParse(t, "d.yaml", minimalYAML+`    health:
      active: {}
`)
	l, p := c.Listeners[0], c.Pools[0]
	want := []struct {
		name     string
		got, def any
	}{
		{"zone", c.Zone, ""},
		{"admin.address", c.Admin.Address, "127.0.0.1:9901"},
		{"consul", c.Consul, (*Consul)(nil)},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"log.access_log.output", c.Log.AccessLog.Output, "stdout"},
		{"log.access_log.sample_success", c.Log.AccessLog.SampleSuccess, 1.0},
		{"log.access_log.flush_interval", c.Log.AccessLog.FlushInterval, 100 * time.Millisecond},
		{"shutdown.drain_delay", c.Shutdown.DrainDelay, 5 * time.Second},
		{"shutdown.grace", c.Shutdown.Grace, 30 * time.Second},
		{"runtime.memory_limit", c.Runtime.MemoryLimit, Size(0)},
		{"runtime.gc_percent", c.Runtime.GCPercent, GCPercent(0)},
		{"limits.read_header_timeout", l.Limits.ReadHeaderTimeout, 10 * time.Second},
		{"limits.read_timeout", l.Limits.ReadTimeout, 60 * time.Second},
		{"limits.write_timeout", l.Limits.WriteTimeout, time.Duration(0)},
		{"limits.idle_timeout", l.Limits.IdleTimeout, 120 * time.Second},
		{"limits.max_header_bytes", l.Limits.MaxHeaderBytes, Size(64 << 10)},
		{"limits.max_body", l.Limits.MaxBody, Size(0)},
		{"limits.max_connections", l.Limits.MaxConnections, 0},
		{"limits.h2_max_concurrent_streams", l.Limits.H2MaxConcurrentStreams, 250},
		{"limits.h3_max_streams", l.Limits.H3MaxStreams, 100},
		{"balance", p.Balance, "least_conn"},
		{"slow_start", p.SlowStart, time.Duration(0)},
		{"protocol", p.Protocol, "http1"},
		{"timeouts.connect", p.Timeouts.Connect, time.Second},
		{"timeouts.per_try", p.Timeouts.PerTry, PerTry{Mode: PerTryAuto}},
		{"timeouts.request", p.Timeouts.Request, 30 * time.Second},
		{"retry.attempts", p.Retry.Attempts, 3},
		{"retry.on", p.Retry.On, []string{"connect_failure", "timeout", "reset", "502", "503"}},
		{"retry.idempotency_header", p.Retry.IdempotencyHeader, ""},
		{"retry.max_body", p.Retry.MaxBody, Size(64 << 10)},
		{"retry.budget.percent", p.Retry.Budget.Percent, 20},
		{"retry.budget.min_per_second", p.Retry.Budget.MinPerSecond, 10},
		{"retry.budget.window", p.Retry.Budget.Window, 10 * time.Second},
		{"zones.spill_below", p.Zones.SpillBelow, 0.7},
		{"zones.panic_below", p.Zones.PanicBelow, 0.5},
		{"queue.size", p.Queue.Size, 0},
		{"queue.timeout", p.Queue.Timeout, time.Second},
		{"health.active.path", p.Health.Active.Path, "/"},
		{"health.active.expect_status", p.Health.Active.ExpectStatus, "200-399"},
		{"health.active.interval", p.Health.Active.Interval, 2 * time.Second},
		{"health.active.timeout", p.Health.Active.Timeout, time.Second},
		{"health.active.rise", p.Health.Active.Rise, 2},
		{"health.active.fall", p.Health.Active.Fall, 3},
		{"health.passive.consecutive_failures", p.Health.Passive.ConsecutiveFailures, 5},
		{"health.passive.ejection", p.Health.Passive.Ejection, 5 * time.Second},
		{"health.passive.max_ejected_percent", p.Health.Passive.MaxEjectedPercent, 50},
		{"health.passive.penalty_half_life", p.Health.Passive.PenaltyHalfLife, time.Second},
		{"health.passive.statuses", p.Health.Passive.Statuses, []int{500, 502, 503, 504}},
		{"backends[0].weight", p.Backends[0].Weight, 1},
		{"backends[0].max_conns", p.Backends[0].MaxConns, 0},
		{"max_idle_conns_per_backend", p.MaxIdleConnsPerBackend, 64},
	}
	for _, w := range want {
		if !reflect.DeepEqual(w.got, w.def) {
			t.Errorf("%s = %#v, want default %#v", w.name, w.got, w.def)
		}
	}
}

func TestDefaultsNested(t *testing.T) {
	c := mustParse(t, "d.yaml", `consul: {}
listeners:
  - name: https
    address: 127.0.0.1:8443
    tls:
      certificates:
        - { cert_file: example-tls/example-cert.pem, key_file: example-tls/example-key.pem }
    routes: [{pool: api}]
pools:
  - name: api
    consul: { service: api }
`)
	if c.Consul.Address != "127.0.0.1:8500" {
		t.Errorf("consul.address = %q", c.Consul.Address)
	}
	if c.Consul.CacheDir != "" {
		t.Errorf("consul.cache_dir = %q without $STATE_DIRECTORY, want none", c.Consul.CacheDir)
	}
	tls := c.Listeners[0].TLS
	if tls.MinVersion != "1.2" || tls.ClientAuth != "none" || tls.ClientSubjectHeader != "X-Client-Subject" || tls.HTTP3 {
		t.Errorf("listener tls defaults: %+v", tls)
	}
	if c.Pools[0].Health.Active != nil {
		t.Error("health.active absent must mean no active checks")
	}
}

// TestExplicitZeroKept checks that a key written as zero is not replaced by
// its default: 0 is meaningful for several keys ("off").
func TestExplicitZeroKept(t *testing.T) {
	c := mustParse(t, "z.yaml", minimalYAML+`    retry: { on: [], budget: { percent: 0, min_per_second: 0 } }
    timeouts: { per_try: 0 }
    zones: { spill_below: 0, panic_below: 0 }
    health:
      passive: { consecutive_failures: 0, penalty_half_life: 0, statuses: [] }
    max_idle_conns_per_backend: 0
log:
  access_log: { sample_success: 0 }
shutdown: { drain_delay: 0, grace: 0 }
`)
	p := c.Pools[0]
	if len(p.Retry.On) != 0 || p.Retry.Budget.Percent != 0 || p.Retry.Budget.MinPerSecond != 0 {
		t.Errorf("retry = %+v", p.Retry)
	}
	if p.Timeouts.PerTry.Mode != PerTryOff || len(p.Health.Passive.Statuses) != 0 {
		t.Errorf("per_try %v, passive statuses %v; want off and none", p.Timeouts.PerTry, p.Health.Passive.Statuses)
	}
	if p.Zones.SpillBelow != 0 || p.Zones.PanicBelow != 0 {
		t.Errorf("zones = %+v", p.Zones)
	}
	if p.Health.Passive.ConsecutiveFailures != 0 || p.Health.Passive.PenaltyHalfLife != 0 || p.MaxIdleConnsPerBackend != 0 {
		t.Errorf("passive %+v, idle %d", p.Health.Passive, p.MaxIdleConnsPerBackend)
	}
	if c.Log.AccessLog.SampleSuccess != 0 || c.Shutdown.DrainDelay != 0 || c.Shutdown.Grace != 0 {
		t.Errorf("log %+v, shutdown %+v", c.Log, c.Shutdown)
	}
}

// TestNullIsAbsent checks that a key with an empty value gets its default.
func TestNullIsAbsent(t *testing.T) {
	c := mustParse(t, "n.yaml", minimalYAML+`    timeouts:
      connect:
    retry:
`)
	if c.Pools[0].Timeouts.Connect != time.Second || c.Pools[0].Retry.Attempts != 3 {
		t.Errorf("timeouts %+v retry %+v", c.Pools[0].Timeouts, c.Pools[0].Retry)
	}
}

func TestZoneFromEnvironment(t *testing.T) {
	t.Setenv(EnvZone, "zone-env")
	data := strings.Replace(minimalYAML, "127.0.0.1:9001", "127.0.0.1:9001\n        zone: zone-a", 1)
	if c := mustParse(t, "e.yaml", data); c.Zone != "zone-env" {
		t.Errorf("zone = %q, want it from %s", c.Zone, EnvZone)
	}
	if c := mustParse(t, "e.yaml", "zone: zone-file\n"+data); c.Zone != "zone-file" {
		t.Errorf("zone = %q, want the file's", c.Zone)
	}
	// With a zone from the environment, backends need zones too.
	_, err := Parse("e.yaml", []byte(minimalYAML))
	var errs *Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "backends[0].zone: missing") {
		t.Errorf("want a missing-zone problem, got %v", err)
	}
}

func TestAliasesAreFollowed(t *testing.T) {
	c := mustParse(t, "a.yaml", `listeners:
  - name: http
    address: 127.0.0.1:8080
    routes: [{pool: a}, {pool: b, path_prefix: /b/}]
pools:
  - name: a
    timeouts: &t { connect: 200ms, request: 3s }
    backends: &be
      - address: 127.0.0.1:9001
  - name: b
    timeouts: *t
    backends: *be
`)
	if c.Pools[1].Timeouts.Connect != 200*time.Millisecond || c.Pools[1].Backends[0].Address != "127.0.0.1:9001" {
		t.Errorf("pool b = %+v", c.Pools[1])
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestLoadRejectsHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, make([]byte, maxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var errs *Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load of a huge file: %v", err)
	}
}

func TestRelativePathsResolveAgainstConfigDir(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "secrets"))
	write(t, filepath.Join(dir, "secrets", "token"), "t")
	path := filepath.Join(dir, "azimuth.yaml")
	write(t, path, "admin: { token_file: secrets/token }\nlog: { access_log: { output: access.log } }\n"+minimalYAML)
	t.Chdir(t.TempDir()) // a different working directory must not matter
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.TokenFile != filepath.Join(dir, "secrets", "token") || c.Log.AccessLog.Output != filepath.Join(dir, "access.log") {
		t.Errorf("token_file %s, access log %s", c.Admin.TokenFile, c.Log.AccessLog.Output)
	}
}

// runtime.memory_limit keeps the size written.
func TestMemoryLimitKept(t *testing.T) {
	c := mustParse(t, "m.yaml", "runtime: {memory_limit: 48MiB}\n"+minimalYAML)
	if got := c.Runtime.MemoryLimit; got != 48<<20 {
		t.Errorf("runtime.memory_limit = %d, want %d", got, 48<<20)
	}
}

// runtime.gc_percent keeps the number written, and off under a memory limit.
func TestGCPercentKept(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want GCPercent
	}{
		{"runtime: {gc_percent: 400}\n", 400},
		{"runtime: {gc_percent: 10}\n", 10},
		{"runtime: {memory_limit: 48MiB, gc_percent: off}\n", GCOff},
	} {
		c := mustParse(t, "g.yaml", tc.yaml+minimalYAML)
		if got := c.Runtime.GCPercent; got != tc.want {
			t.Errorf("%q: runtime.gc_percent = %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

// TestPerTryForms reads every form of timeouts.per_try. A connect timeout
// longer than a fixed per_try is fine: the hedge starts while the connect
// goes on.
func TestPerTryForms(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want PerTry
	}{
		{"auto", PerTry{Mode: PerTryAuto}},
		{`"off"`, PerTry{Mode: PerTryOff}},
		{"off", PerTry{Mode: PerTryOff}},
		{"0", PerTry{Mode: PerTryOff}},
		{"250ms", PerTry{Mode: PerTryFixed, Fixed: 250 * time.Millisecond}},
	} {
		c2 := mustParse(t, "p.yaml", minimalYAML+"    timeouts: { connect: 2s, per_try: "+c.yaml+" }\n")
		if got := c2.Pools[0].Timeouts.PerTry; got != c.want {
			t.Errorf("per_try: %s read as %+v, want %+v", c.yaml, got, c.want)
		}
	}
}

// Under systemd's StateDirectory=, the Consul cache goes there by default;
// a cache_dir in the file wins, resolved against the file's directory.
func TestConsulCacheDirDefault(t *testing.T) {
	const body = `listeners:
  - name: http
    address: 127.0.0.1:8080
    routes: [{pool: api}]
pools:
  - name: api
    consul: { service: api }
`
	t.Setenv("STATE_DIRECTORY", "/var/lib/azimuth:/var/lib/other")
	if c := mustParse(t, "/etc/azimuth/a.yaml", "consul: {}\n"+body); c.Consul.CacheDir != "/var/lib/azimuth" {
		t.Errorf("consul.cache_dir under StateDirectory = %q, want /var/lib/azimuth", c.Consul.CacheDir)
	}
	if c := mustParse(t, "/etc/azimuth/a.yaml", "consul: { cache_dir: cache }\n"+body); c.Consul.CacheDir != "/etc/azimuth/cache" {
		t.Errorf("consul.cache_dir written as cache = %q, want /etc/azimuth/cache", c.Consul.CacheDir)
	}
}

// TestBalancePoliciesLoad: each policy loads, with hash_key and sticky as
// written, and sticky's ttl defaults to a session cookie.
func TestBalancePoliciesLoad(t *testing.T) {
	for _, pol := range []string{BalanceLeastConn, BalanceRoundRobin, BalanceRandom, BalanceP2C} {
		c := mustParse(t, "b.yaml", minimalYAML+"    balance: "+pol+"\n    sticky: {cookie: srv}\n")
		if p := c.Pools[0]; p.Balance != pol || p.HashKey != nil || p.Sticky == nil || p.Sticky.Cookie != "srv" || p.Sticky.TTL != 0 {
			t.Errorf("%s: balance %q, hash_key %v, sticky %+v", pol, p.Balance, p.HashKey, p.Sticky)
		}
	}
	for _, key := range []struct {
		yaml string
		want HashKey
	}{
		{"{header: X-User}", HashKey{Header: "X-User"}},
		{"{cookie: sid}", HashKey{Cookie: "sid"}},
		{"{source: client_address}", HashKey{Source: HashSourceClientAddress}},
	} {
		c := mustParse(t, "h.yaml", minimalYAML+"    balance: hash\n    hash_key: "+key.yaml+"\n    sticky: {cookie: srv, ttl: 1h}\n")
		p := c.Pools[0]
		if p.HashKey == nil || *p.HashKey != key.want || p.Sticky.TTL != time.Hour {
			t.Errorf("%s: hash_key %+v, sticky %+v", key.yaml, p.HashKey, p.Sticky)
		}
	}
}
