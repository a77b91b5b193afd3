package configs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fragments of valid config to build cases from.
const (
	okListeners = `listeners:
  - name: http
    address: 127.0.0.1:8080
    routes:
      - pool: web
`
	okPools = `pools:
  - name: web
    backends:
      - address: 127.0.0.1:9001
`
)

// The example certificate, by absolute path so cases parsed as a file in a
// temporary directory find it.
var (
	exampleCert, _ = filepath.Abs("example-tls/example-cert.pem")
	exampleKey, _  = filepath.Abs("example-tls/example-key.pem")
)

// markLine returns the 1-based line holding "#<", the marker the cases
// below put on the line each problem must be reported at; 0 if none.
func markLine(data string) int {
	for i, l := range strings.Split(data, "\n") {
		if strings.Contains(l, "#<") {
			return i + 1
		}
	}
	return 0
}

func TestInvalidConfigs(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		path string // the key path the problem must name
		msg  string // a fragment of its message
	}{
		// Syntax and shape.
		{"empty file", "", "", "the file is empty"},
		{"only comments", "# nothing\n", "", "only comments"},
		{"not a mapping", "- a #<\n- b\n", "", "must be a mapping"},
		{"scalar document", "hello #<\n", "", "must be a mapping"},
		{"two documents", okListeners + okPools + "--- #<\nzone: x\n", "", "second YAML document"},
		{"tab indentation", "listeners:\n\t- name: x #<\n", "", "tab in indentation"},
		{"syntax error", okListeners + "pools: [ #<\n", "", "invalid YAML"},
		{"unknown top key", "zoen: a #<\n" + okListeners + okPools, "zoen", "unknown key (did you mean zone?)"},
		{"unknown nested key", okListeners + okPools + "    timeouts:\n      pertry: 3s #<\n", "pools[0].timeouts.pertry", "unknown key (did you mean per_try?)"},
		{"duplicate key", okListeners + okPools + "    name: again #<\n", "pools[0].name", "duplicate key, first set on line 7"},
		{"merge key", okListeners + okPools + "    timeouts:\n      <<: {connect: 1s} #<\n", "pools[0].timeouts", "merge keys"},
		{"list where a mapping goes", "admin: [a] #<\n" + okListeners + okPools, "admin", "want a mapping"},
		{"mapping where a list goes", "listeners: {a: 1} #<\n" + okPools, "listeners", "want a list"},
		{"mapping where a value goes", "zone: {a: 1} #<\n" + okListeners + okPools, "zone", "want a single value"},
		{"bad duration", okListeners + okPools + "    slow_start: 5 seconds #<\n", "pools[0].slow_start", "want a number with a unit"},
		{"bare number duration", okListeners + okPools + "    slow_start: 30 #<\n", "pools[0].slow_start", "want a number with a unit"},
		{"negative duration", okListeners + okPools + "    timeouts: {request: -1s} #<\n", "pools[0].timeouts.request", "negative"},
		{"access log flush interval too long", "log: {access_log: {flush_interval: 1m}} #<\n" + okListeners + okPools, "log.access_log.flush_interval", "over the maximum of 10s"},
		{"memory limit below the minimum", "runtime: {memory_limit: 1MiB} #<\n" + okListeners + okPools, "runtime.memory_limit", "below the minimum of 16MiB"},
		{"memory limit without a unit word", "runtime: {memory_limit: 48 MiB} #<\n" + okListeners + okPools, "runtime.memory_limit", "whole number of B"},
		{"gc off without a memory limit", "runtime: {gc_percent: off} #<\n" + okListeners + okPools, "runtime.gc_percent", "off needs runtime.memory_limit"},
		{"gc percent below the minimum", "runtime: {gc_percent: 5} #<\n" + okListeners + okPools, "runtime.gc_percent", "below the minimum of 10"},
		{"gc percent written as zero", "runtime: {gc_percent: 0} #<\n" + okListeners + okPools, "runtime.gc_percent", "below the minimum of 10"},
		{"gc percent not a number", "runtime: {gc_percent: fast} #<\n" + okListeners + okPools, "runtime.gc_percent", "want a whole number (percent) or off"},
		{"gc percent past 32 bits", "runtime: {gc_percent: 2147483648} #<\n" + okListeners + okPools, "runtime.gc_percent", "above the maximum of 2147483647"},
		{"gc percent negative", "runtime: {gc_percent: -1} #<\n" + okListeners + okPools, "runtime.gc_percent", "want a whole number (percent) or off"},
		{"bad size", okListeners + okPools + "    retry: {max_body: 10 MB} #<\n", "pools[0].retry.max_body", "whole number of B"},
		{"yes is not a bool", "admin: {pprof: yes} #<\n" + okListeners + okPools, "admin.pprof", "want true or false"},
		{"quoted number", okListeners + okPools + "    retry: {attempts: \"3\"} #<\n", "pools[0].retry.attempts", "want a number, got the string"},
		{"fraction as int field", okListeners + okPools + "    retry: {attempts: 2.5} #<\n", "pools[0].retry.attempts", "want a whole number"},
		{"nan fraction", okListeners + okPools + "    zones: {spill_below: .nan} #<\n", "pools[0].zones.spill_below", "want a number"},

		// Top level.
		{"no listeners", okPools, "listeners", "at least one listener"},
		{"bad zone name", "zone: us east #<\n" + okListeners + okPools, "zone", "use letters"},
		{"bad admin address", "admin: {address: localhost} #<\n" + okListeners + okPools, "admin.address", "want host:port"},
		{"admin on every interface without a token", "admin: {address: \"0.0.0.0:9901\"} #<\n" + okListeners + okPools, "admin.address", "set admin.token_file"},
		{"admin on an empty host without a token", "admin: {address: \":9901\"} #<\n" + okListeners + okPools, "admin.address", "reachable from other hosts"},
		{"admin on a routable address without a token", "admin: {address: \"10.1.2.3:9901\"} #<\n" + okListeners + okPools, "admin.address", "set admin.token_file"},
		{"backup pool unknown", okListeners + okPools + "    backup_pool: elsewhere #<\n", "pools[0].backup_pool", "no pool named \"elsewhere\""},
		{"backup pool is itself", okListeners + okPools + "    backup_pool: web #<\n", "pools[0].backup_pool", "is this pool"},
		{"admin token without a name", "admin:\n  tokens: [{ file: " + exampleCert + " }] #<\n" + okListeners + okPools, "admin.tokens[0].name", "every token needs a name"},
		{"admin token named default beside token_file", "admin:\n  token_file: " + exampleCert + "\n  tokens: [{ name: default, file: " + exampleCert + " }] #<\n" + okListeners + okPools, "admin.tokens[0].name", "duplicate token name \"default\""},
		{"admin token without a file", "admin:\n  tokens: [{ name: ops }] #<\n" + okListeners + okPools, "admin.tokens[0].file", "read from a file"},
		{"readiness share above 1", "readiness: {min_healthy_share: 1.5} #<\n" + okListeners + okPools, "readiness.min_healthy_share", "from 0 to 1"},
		{"readiness share negative", "readiness: {min_healthy_share: -0.1} #<\n" + okListeners + okPools, "readiness.min_healthy_share", "from 0 to 1"},
		{"readiness of an unknown pool", "readiness:\n  pools: [web, nope] #<\n" + okListeners + okPools, "readiness.pools[1]", "no pool named \"nope\""},
		{"readiness on the admin address", "admin: {address: \"127.0.0.1:9901\"}\nreadiness: {address: \"127.0.0.1:9901\"} #<\n" + okListeners + okPools, "readiness.address", "the admin listener's"},
		{"readiness address malformed", "readiness: {address: nowhere} #<\n" + okListeners + okPools, "readiness.address", "want host:port"},
		{"missing token file", "admin: {token_file: nope.txt} #<\n" + okListeners + okPools, "admin.token_file", "does not exist"},
		{"consul address without host", "consul: {address: \":8500\"} #<\n" + okListeners + okPools, "consul.address", "host is missing"},
		{"consul cert without key", "consul:\n  tls: {cert_file: " + exampleCert + "} #<\n" + okListeners + okPools, "consul.tls.key_file", "missing"},
		{"bad log level", "log: {level: verbose} #<\n" + okListeners + okPools, "log.level", "not one of debug, info, warn, error"},
		{"bad log format", "log: {format: xml} #<\n" + okListeners + okPools, "log.format", "not one of json, text"},
		{"access log dir missing", "log: {access_log: {output: nodir/access.log}} #<\n" + okListeners + okPools, "log.access_log.output", "does not exist"},
		{"sample outside 0..1", "log: {access_log: {sample_success: 2}} #<\n" + okListeners + okPools, "log.access_log.sample_success", "outside 0..1"},

		// Listeners.
		{"duplicate listener name", okListeners + "  - name: http #<\n    address: 127.0.0.1:8081\n    routes: [{pool: web}]\n" + okPools, "listeners[1].name", "duplicate listener name"},
		{"two listeners on one address", okListeners + "  - name: b\n    address: 127.0.0.1:8080 #<\n    routes: [{pool: web}]\n" + okPools, "listeners[1].address", "also used by listeners[0]"},
		{"two listeners on one port-0 address", strings.Replace(okListeners, "8080", "0", 1) + "  - name: b\n    address: 127.0.0.1:0 #<\n    routes: [{pool: web}]\n" + okPools, "listeners[1].address", "also used by listeners[0]"},
		{"wildcard overlaps", okListeners + "  - name: b\n    address: 0.0.0.0:8080 #<\n    routes: [{pool: web}]\n" + okPools, "listeners[1].address", "also used by listeners[0]"},
		{"listener on admin address", "admin: {address: 127.0.0.1:8080}\n" + strings.Replace(okListeners, "8080", "8080 #<", 1) + okPools, "listeners[0].address", "also the admin address"},
		{"bad listener address", strings.Replace(okListeners, "127.0.0.1:8080", "127.0.0.1:http #<", 1) + okPools, "listeners[0].address", "port must be a number"},
		{"missing listener address", "listeners:\n  - name: a #<\n    routes: [{pool: web}]\n" + okPools, "listeners[0].address", "missing"},
		{"listener without routes", "listeners:\n  - name: a #<\n    address: 127.0.0.1:8080\n" + okPools, "listeners[0].routes", "at least one route"},
		{"route to missing pool", okListeners + "      - pool: nope #<\n        path_prefix: /x/\n" + okPools, "listeners[0].routes[1].pool", `no pool is named "nope"`},
		{"route without pool", okListeners + "      - path_prefix: /x/ #<\n" + okPools, "listeners[0].routes[1].pool", "missing"},
		{"two default routes", okListeners + "      - pool: web #<\n" + okPools, "listeners[0].routes[1]", "second default route"},
		{"same route twice", okListeners + "      - {pool: web, host: a.example.com}\n      - {pool: web, host: A.example.com} #<\n" + okPools, "listeners[0].routes[2]", "never match"},
		{"bad host pattern", okListeners + "      - {pool: web, host: a.*.com} #<\n" + okPools, "listeners[0].routes[1].host", "exact name or *.suffix"},
		{"host with port", okListeners + "      - {pool: web, host: a.com:80} #<\n" + okPools, "listeners[0].routes[1].host", "must not include a port"},
		{"bare wildcard host", okListeners + "      - {pool: web, host: \"*\"} #<\n" + okPools, "listeners[0].routes[1].host", "exact name or *.suffix"},
		{"path prefix without slash", okListeners + "      - {pool: web, path_prefix: v1} #<\n" + okPools, "listeners[0].routes[1].path_prefix", "must start with /"},
		{"bad trusted proxy", okListeners + "    trusted_proxies: [10.0.0.0/33] #<\n" + okPools, "listeners[0].trusted_proxies[0]", "neither an IP address nor a CIDR"},
		{"redirect to missing listener", okListeners + "  - {name: r, address: 127.0.0.1:80, redirect_https: true, redirect_to: nope} #<\n" + okPools, "listeners[1].redirect_to", `no listener is named "nope"`},
		{"redirect to plain listener", okListeners + "  - {name: r, address: 127.0.0.1:80, redirect_https: true, redirect_to: http} #<\n" + okPools, "listeners[1].redirect_to", "has no tls"},
		{"redirect_to without redirect_https", okListeners + "  - {name: r, address: 127.0.0.1:80, redirect_to: http} #<\n" + okPools, "listeners[1].redirect_to", "needs redirect_https"},
		{"redirect listener with routes", okListeners + "  - {name: r, address: 127.0.0.1:80, redirect_https: true, routes: [{pool: web}]} #<\n" + okPools, "listeners[1].routes", "not used"},
		{"redirect_https on tls listener", tlsListener("    redirect_https: true #<\n", "", exampleCert) + okPools, "listeners[0].redirect_https", "already is"},
		{"missing certificate file", tlsListener("", "", "missing.pem #<") + okPools, "listeners[0].tls.certificates[0].cert_file", "missing.pem does not exist"},
		{"tls without certificates", "listeners:\n  - name: s\n    address: 127.0.0.1:8443\n    tls: {http3: true} #<\n    routes: [{pool: web}]\n" + okPools, "listeners[0].tls.certificates", "at least one certificate"},
		{"unknown min_version", tlsListener("", "      min_version: \"1.1\" #<\n", exampleCert) + okPools, "listeners[0].tls.min_version", "not one of 1.2, 1.3"},
		{"unknown client_auth", tlsListener("", "      client_auth: always #<\n", exampleCert) + okPools, "listeners[0].tls.client_auth", "not one of none, require, verify_if_given"},
		{"client_auth without CA", tlsListener("", "      client_auth: require #<\n", exampleCert) + okPools, "listeners[0].tls.client_auth", "needs client_ca_file"},
		{"CA without client_auth", tlsListener("", "      client_ca_file: "+exampleCert+" #<\n", exampleCert) + okPools, "listeners[0].tls.client_ca_file", "no effect"},
		{"bad subject header", tlsListener("", "      client_subject_header: \"X Subject\" #<\n", exampleCert) + okPools, "listeners[0].tls.client_subject_header", "not a valid header name"},
		{"max_header_bytes zero", okListeners + "    limits: {max_header_bytes: 0} #<\n" + okPools, "listeners[0].limits.max_header_bytes", "more than 0"},
		{"h2 streams zero", okListeners + "    limits: {h2_max_concurrent_streams: 0} #<\n" + okPools, "listeners[0].limits.h2_max_concurrent_streams", "at least 1"},
		{"negative max_connections", okListeners + "    limits: {max_connections: -1} #<\n" + okPools, "listeners[0].limits.max_connections", "negative"},

		// Pools.
		{"duplicate pool name", okListeners + okPools + "  - name: web #<\n    backends: [{address: 127.0.0.1:9002}]\n", "pools[1].name", "duplicate pool name"},
		{"pool without backends", okListeners + "pools:\n  - name: web #<\n", "pools[0]", "no backends"},
		{"pool with backends and consul", "consul: {}\n" + okListeners + okPools + "    consul: {service: web} #<\n", "pools[0].consul", "not both"},
		{"consul pool without consul block", okListeners + "pools:\n  - name: web\n    consul: {service: web} #<\n", "pools[0].consul", "top-level consul"},
		{"consul pool without service", "consul: {}\n" + okListeners + "pools:\n  - name: web\n    consul: {zone_meta: az} #<\n", "pools[0].consul.service", "missing"},
		{"consul pool without zone source", "zone: a\nconsul: {}\n" + okListeners + "pools:\n  - name: web\n    consul: {service: web} #<\n", "pools[0].consul", "zone_meta or zone_tag_prefix"},
		{"backend without zone", "zone: a\n" + okListeners + okPools[:len(okPools)-1] + " #<\n", "pools[0].backends[0].zone", "every backend needs one"},
		{"duplicate backend", okListeners + okPools + "      - address: 127.0.0.1:9001 #<\n", "pools[0].backends[1].address", "already backends[0]"},
		{"backend port 0", okListeners + okPools + "      - address: 127.0.0.1:0 #<\n", "pools[0].backends[1].address", "port 0"},
		{"backend bad host", okListeners + okPools + "      - address: bad_host!:80 #<\n", "pools[0].backends[1].address", "neither an IP address nor a valid name"},
		{"negative weight", okListeners + okPools + "        weight: -1 #<\n", "pools[0].backends[0].weight", "negative"},
		{"unknown balance", okListeners + okPools + "    balance: fastest #<\n", "pools[0].balance", `"fastest" is not one of least_conn, round_robin, random, p2c, hash`},
		{"unknown protocol", okListeners + okPools + "    protocol: http2 #<\n", "pools[0].protocol", "not one of http1, h2c, h2"},
		{"h2 without tls", okListeners + okPools + "    protocol: h2 #<\n", "pools[0].protocol", "runs over TLS"},
		{"h2c with tls", okListeners + okPools + "    protocol: h2c\n    tls: {} #<\n", "pools[0].tls", "cleartext"},
		{"pool tls missing ca", okListeners + okPools + "    tls: {ca_file: nope.pem} #<\n", "pools[0].tls.ca_file", "does not exist"},
		{"per_try longer than request", okListeners + okPools + "    timeouts: {per_try: 10s, request: 5s} #<\n", "pools[0].timeouts.per_try", "longer than request"},
		{"request zero", okListeners + okPools + "    timeouts: {request: 0} #<\n", "pools[0].timeouts.request", "more than 0"},
		{"per_try neither auto, off nor a duration", okListeners + okPools + "    timeouts: {per_try: fast} #<\n", "pools[0].timeouts.per_try", "want auto, off or a duration"},
		{"per_try negative", okListeners + okPools + "    timeouts: {per_try: -1s} #<\n", "pools[0].timeouts.per_try", "want auto, off or a duration"},
		{"budget min_concurrency replaced", okListeners + okPools + "    retry: {budget: {min_concurrency: 3}} #<\n", "pools[0].retry.budget.min_concurrency", "use min_per_second"},
		{"budget window under a second", okListeners + okPools + "    retry: {budget: {window: 500ms}} #<\n", "pools[0].retry.budget.window", "shorter than 1s"},
		{"budget min_per_second negative", okListeners + okPools + "    retry: {budget: {min_per_second: -1}} #<\n", "pools[0].retry.budget.min_per_second", "negative"},
		{"passive status not an error", okListeners + okPools + "    health: {passive: {statuses: [500, 302]}} #<\n", "pools[0].health.passive.statuses[1]", "not an error status"},
		{"passive status twice", okListeners + okPools + "    health: {passive: {statuses: [503, 503]}} #<\n", "pools[0].health.passive.statuses[1]", "already statuses[0]"},
		{"attempts below 1", okListeners + okPools + "    retry: {attempts: 0} #<\n", "pools[0].retry.attempts", "outside 1..10"},
		{"attempts above 10", okListeners + okPools + "    retry: {attempts: 11} #<\n", "pools[0].retry.attempts", "outside 1..10"},
		{"bad retry cause", okListeners + okPools + "    retry: {on: [timeout, flaky]} #<\n", "pools[0].retry.on[1]", `"flaky": want connect_failure`},
		{"retry on success status", okListeners + okPools + "    retry: {on: [\"200\"]} #<\n", "pools[0].retry.on[0]", "not an error"},
		{"duplicate retry cause", okListeners + okPools + "    retry: {on: [reset, reset]} #<\n", "pools[0].retry.on[1]", "already on[0]"},
		{"bad idempotency header", okListeners + okPools + "    retry: {idempotency_header: \"a:b\"} #<\n", "pools[0].retry.idempotency_header", "not a valid header name"},
		{"budget percent above 100", okListeners + okPools + "    retry: {budget: {percent: 150}} #<\n", "pools[0].retry.budget.percent", "outside 0..100"},
		{"spill_below above 1", okListeners + okPools + "    zones: {spill_below: 1.5} #<\n", "pools[0].zones.spill_below", "outside 0..1"},
		{"panic_below negative", okListeners + okPools + "    zones: {panic_below: -0.1} #<\n", "pools[0].zones.panic_below", "outside 0..1"},
		{"panic above spill", okListeners + okPools + "    zones: {spill_below: 0.3, panic_below: 0.6} #<\n", "pools[0].zones.panic_below", "above spill_below"},
		{"queue without timeout", okListeners + okPools + "    queue: {size: 10, timeout: 0} #<\n", "pools[0].queue.timeout", "more than 0"},
		{"active path without slash", okListeners + okPools + "    health: {active: {path: healthz}} #<\n", "pools[0].health.active.path", "must start with /"},
		{"expect_status reversed", okListeners + okPools + "    health: {active: {expect_status: 399-200}} #<\n", "pools[0].health.active.expect_status", "range of 3-digit codes"},
		{"expect_status 2xx", okListeners + okPools + "    health: {active: {expect_status: 2xx}} #<\n", "pools[0].health.active.expect_status", "range of 3-digit codes"},
		{"rise zero", okListeners + okPools + "    health: {active: {rise: 0}} #<\n", "pools[0].health.active.rise", "at least 1"},
		{"fall zero", okListeners + okPools + "    health: {active: {fall: 0}} #<\n", "pools[0].health.active.fall", "at least 1"},
		{"interval zero", okListeners + okPools + "    health: {active: {interval: 0}} #<\n", "pools[0].health.active.interval", "more than 0"},
		{"timeout above interval", okListeners + okPools + "    health: {active: {interval: 1s, timeout: 2s}} #<\n", "pools[0].health.active.timeout", "longer than interval"},
		{"ejected percent above 100", okListeners + okPools + "    health: {passive: {max_ejected_percent: 101}} #<\n", "pools[0].health.passive.max_ejected_percent", "outside 0..100"},
		{"ejection zero", okListeners + okPools + "    health: {passive: {ejection: 0}} #<\n", "pools[0].health.passive.ejection", "more than 0"},
		{"bad pool name", okListeners + okPools + "  - name: \"my pool\" #<\n    backends: [{address: 127.0.0.1:9002}]\n", "pools[1].name", "use letters"},
		{"hash without hash_key", okListeners + okPools + "    balance: hash #<\n", "pools[0].balance", "hash needs hash_key"},
		{"hash_key without hash", okListeners + okPools + "    balance: p2c\n    hash_key: {header: X-User} #<\n", "pools[0].hash_key", "only for balance hash, not p2c"},
		{"hash_key with the default policy", okListeners + okPools + "    hash_key: {header: X-User} #<\n", "pools[0].hash_key", "only for balance hash, not least_conn"},
		{"hash_key with two sources", okListeners + okPools + "    balance: hash\n    hash_key: {header: X-User, cookie: sid} #<\n", "pools[0].hash_key", "exactly one of header, cookie and source (2 set)"},
		{"hash_key empty", okListeners + okPools + "    balance: hash\n    hash_key: {} #<\n", "pools[0].hash_key", "exactly one of header, cookie and source (0 set)"},
		{"hash_key bad source", okListeners + okPools + "    balance: hash\n    hash_key: {source: x_forwarded_for} #<\n", "pools[0].hash_key.source", `"x_forwarded_for" is not one of client_address`},
		{"hash_key bad header", okListeners + okPools + "    balance: hash\n    hash_key: {header: \"X User\"} #<\n", "pools[0].hash_key.header", "not a valid header name"},
		{"hash_key bad cookie", okListeners + okPools + "    balance: hash\n    hash_key: {cookie: \"a;b\"} #<\n", "pools[0].hash_key.cookie", "not a valid cookie name"},
		{"sticky without cookie", okListeners + okPools + "    sticky: {ttl: 1h} #<\n", "pools[0].sticky.cookie", "missing"},
		{"sticky bad cookie", okListeners + okPools + "    sticky: {cookie: \"a b\"} #<\n", "pools[0].sticky.cookie", "not a valid cookie name"},
		{"sticky negative ttl", okListeners + okPools + "    sticky: {cookie: srv, ttl: -1s} #<\n", "pools[0].sticky.ttl", "negative"},
	}
	t.Setenv(EnvZone, "")
	name := filepath.Join(t.TempDir(), "azimuth.yaml")
	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.name] {
			t.Fatalf("two cases named %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(name, []byte(tt.yaml))
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse: %v, want *Errors", err)
			}
			line := markLine(tt.yaml)
			for _, p := range errs.Problems {
				if p.File != name {
					t.Errorf("problem %q has file %q", p, p.File)
				}
				if p.Line == line && p.Path == tt.path && strings.Contains(p.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("no problem at line %d, path %q, containing %q; got:\n%v", line, tt.path, tt.msg, err)
		})
	}
}

// tlsListener returns a TLS listener with the given certificate file, with
// extra lines after the listener's name and inside its tls block.
func tlsListener(listenerExtra, tlsExtra, certFile string) string {
	return "listeners:\n  - name: https\n" + listenerExtra +
		"    address: 127.0.0.1:8443\n    tls:\n      certificates:\n" +
		"        - cert_file: " + certFile + "\n          key_file: " + exampleKey + "\n" + tlsExtra +
		"    routes: [{pool: web}]\n"
}

func TestErrorFormat(t *testing.T) {
	data := okListeners + okPools + "    timeouts:\n      pertry: 3s\n    retry: {attempts: 0}\n"
	_, err := Parse("azimuth.yaml", []byte(data))
	want := "azimuth.yaml:11: pools[0].timeouts.pertry: unknown key (did you mean per_try?)\n" +
		"azimuth.yaml:12: pools[0].retry.attempts: 0 is outside 1..10 (1 means no retries)"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	for _, tt := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "f", Line: 3, Path: "a.b", Msg: "bad"}, "f:3: a.b: bad"},
		{Problem{File: "f", Path: "a", Msg: "bad"}, "f: a: bad"},
		{Problem{File: "f", Line: 1, Msg: "bad"}, "f:1: bad"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestEveryProblemAtOnce checks that problems in different parts of the
// file are all reported, in line order, decode and validation alike.
func TestEveryProblemAtOnce(t *testing.T) {
	data := `zone: a
listeners:
  - name: http
    address: nope
    routes: [{pool: missing}]
pools:
  - name: web
    retry: {attempts: 0, budget: {percent: 101}}
    timeouts: {request: 1 minute}
    backends:
      - {address: 127.0.0.1:9001}
      - {address: 127.0.0.1:9001, zone: a, wieght: 2}
`
	_, err := Parse("f.yaml", []byte(data))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v", err)
	}
	want := []string{
		"f.yaml:4: listeners[0].address:",
		"f.yaml:5: listeners[0].routes[0].pool:",
		"f.yaml:8: pools[0].retry.attempts:",
		"f.yaml:8: pools[0].retry.budget.percent:",
		"f.yaml:9: pools[0].timeouts.request:",
		"f.yaml:11: pools[0].backends[0].zone:",
		"f.yaml:12: pools[0].backends[1].wieght: unknown key (did you mean weight?)",
		"f.yaml:12: pools[0].backends[1].address:",
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestAliasBombIsBounded(t *testing.T) {
	// Every pool aliases one 500-backend list: 1000 pools are 500,000
	// values from a file of a few kilobytes.
	var b strings.Builder
	b.WriteString(okListeners + "pools:\n  - name: web\n    backends: &b\n")
	for range 500 {
		b.WriteString("      - {address: 127.0.0.1:9001}\n")
	}
	b.WriteString("  - &p {name: p, backends: *b}\n")
	for range 1000 {
		b.WriteString("  - *p\n")
	}
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many values after expanding aliases") {
		t.Fatalf("want the alias bound to trip, got %.300v", err)
	}
}

func TestProblemsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(okListeners + okPools)
	for range 300 {
		b.WriteString("    bogus_key_that_is_unknown: 1\n")
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v", err)
	}
	if n := len(errs.Problems); n != maxProblems {
		t.Fatalf("%d problems reported, want %d", n, maxProblems)
	}
	if last := errs.Problems[maxProblems-1].Msg; last != "and 201 more problems" {
		t.Fatalf("last problem %q", last)
	}
}

// The admin API may listen beyond loopback with a token; readiness takes
// a share, the pools that count and a listener of its own.
func TestAdminAndReadinessAccepted(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, "ok.yaml", fmt.Sprintf(`admin: { address: "0.0.0.0:9901", token_file: %s }
readiness: { min_healthy_share: 0.5, pools: [web], address: "0.0.0.0:9902" }
`, token)+okListeners+okPools)
	if r := c.Readiness; r.MinHealthyShare != 0.5 || len(r.Pools) != 1 || r.Pools[0] != "web" || r.Address != "0.0.0.0:9902" {
		t.Errorf("readiness %+v", r)
	}
	if _, err := Parse("ok.yaml", []byte(fmt.Sprintf("admin: { address: \"0.0.0.0:9901\", tokens: [{ name: ops, file: %s }] }\n", token)+okListeners+okPools)); err != nil {
		t.Errorf("admin beyond loopback with named tokens only: %v", err)
	}
	for _, addr := range []string{"127.0.0.1:9901", "[::1]:9901", "localhost:9901", "127.0.0.2:0"} {
		if _, err := Parse("ok.yaml", []byte("admin: { address: \""+addr+"\" }\n"+okListeners+okPools)); err != nil {
			t.Errorf("admin on loopback %s without a token: %v", addr, err)
		}
	}
}
