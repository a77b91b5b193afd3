package main

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// The chaos suite runs the real binary in front of a fleet of real
// backends, two per zone on 127.0.1.x, 127.0.2.x and 127.0.3.x, plays one
// fault while a client loop runs, and checks the three promises of
// docs/reliability.md: no failed idempotent request while a zone is
// healthy, no non-idempotent request delivered twice, and no goroutine or
// file descriptor left behind.

// chaosZones are the fleet's zones; the proxy's own zone is the first.
var chaosZones = []string{"zone-a", "zone-b", "zone-c"}

// chaosAttempts is the pool's retry.attempts: the most times one request
// may reach the backends.
const chaosAttempts = 3

// chaosStartFleet starts two healthy backends per zone, stopped when the
// test ends.
func chaosStartFleet(t *testing.T) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Start(fleet.Options{Zones: chaosZones, PerZone: 2})
	if err != nil {
		t.Fatalf("starting the backends (zones are loopback addresses 127.0.z.n): %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("stopping the backends: %v", err)
		}
	})
	return f
}

// chaosTarget is one backend as the config file lists it.
type chaosTarget struct {
	addr, zone string
	weight     int
}

// chaosTargets lists backends of the fleet for the config file.
func chaosTargets(bs []*fleet.Backend) []chaosTarget {
	out := make([]chaosTarget, 0, len(bs))
	for _, b := range bs {
		out = append(out, chaosTarget{addr: b.Addr, zone: b.Zone})
	}
	return out
}

// chaosSetup is one case's proxy config.
type chaosSetup struct {
	// backends are the pool's static backends, unless consul is set: then
	// the pool follows the Consul service "chaos" at that agent address.
	backends []chaosTarget
	consul   string
	// tls makes the listener serve a.pem and a-key.pem from the config's
	// directory (HTTP/1.1 and HTTP/2).
	tls bool
	// listen is the listener's address; "" is 127.0.0.1:0.
	listen string
	// idle, if set, is the listener's idle_timeout: a change of it binds
	// the listener anew.
	idle time.Duration
	// perTry is the pool's per-try timeout. Cases whose fault makes a
	// backend slow or mute keep it short, so the retry comes quickly;
	// the others give a busy machine room.
	perTry time.Duration
}

// yaml renders the config. The retry budget's floor is above the client
// loop's concurrency, as in a pool sized for its traffic: the budget's own
// refusals are tested in proxy/, here every retry the rules allow must be
// made. max_idle_conns_per_backend is 1 so the connections the proxy may
// keep after the load are few and known (see chaosLeakSlack).
func (s chaosSetup) yaml() string {
	var b strings.Builder
	b.WriteString("zone: zone-a\nadmin: { address: 127.0.0.1:0 }\n")
	b.WriteString("log: { level: info, access_log: { output: \"off\" } }\n")
	b.WriteString("shutdown: { drain_delay: 50ms, grace: 2s }\n")
	if s.consul != "" {
		fmt.Fprintf(&b, "consul: { address: %s }\n", s.consul)
	}
	listen := cmp.Or(s.listen, "127.0.0.1:0")
	fmt.Fprintf(&b, "listeners:\n  - name: web\n    address: %s\n", listen)
	if s.idle > 0 {
		fmt.Fprintf(&b, "    limits: { idle_timeout: %s }\n", s.idle)
	}
	if s.tls {
		b.WriteString("    tls: { certificates: [ { cert_file: a.pem, key_file: a-key.pem } ] }\n")
	}
	b.WriteString("    routes: [ { pool: web } ]\n")
	b.WriteString("pools:\n  - name: web\n    max_idle_conns_per_backend: 1\n")
	fmt.Fprintf(&b, "    timeouts: { connect: 100ms, per_try: %s, request: 3s }\n", s.perTry)
	fmt.Fprintf(&b, "    retry: { attempts: %d, on: [connect_failure, timeout, reset, \"502\", \"503\"], idempotency_header: Idempotency-Key, budget: { percent: 100, min_per_second: 32 } }\n", chaosAttempts)
	b.WriteString("    health:\n")
	b.WriteString("      active: { path: /healthz, interval: 100ms, timeout: 80ms, rise: 2, fall: 2 }\n")
	b.WriteString("      passive: { consecutive_failures: 3, ejection: 500ms, max_ejected_percent: 50 }\n")
	if s.consul != "" {
		b.WriteString("    consul: { service: chaos, zone_meta: az }\n")
		return b.String()
	}
	b.WriteString("    backends:\n")
	for _, t := range s.backends {
		w := t.weight
		if w == 0 {
			w = 1
		}
		fmt.Fprintf(&b, "      - { address: %s, zone: %s, weight: %d }\n", t.addr, t.zone, w)
	}
	return b.String()
}

// chaosRig is a running azimuth and what a case needs to drive it.
type chaosRig struct {
	dir, path string
	p         *process
	admin     string
	url       string // the listener's base URL
}

// chaosNewRig makes the directory the config and its files live in.
func chaosNewRig(t *testing.T) *chaosRig {
	dir := t.TempDir()
	return &chaosRig{dir: dir, path: filepath.Join(dir, "azimuth.yaml")}
}

// start writes the config, runs azimuth and waits until the pool has
// backends healthy backends.
func (r *chaosRig) start(t *testing.T, s chaosSetup, backends int) {
	t.Helper()
	if err := os.WriteFile(r.path, []byte(s.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	r.p, r.admin = reloadStart(t, r.path)
	scheme := "http://"
	if s.tls {
		scheme = "https://"
	}
	r.url = scheme + reloadListenerAddr(t, r.admin, "web")
	r.waitUp(t, backends)
}

// waitUp polls until the pool has n backends, every one of them up.
func (r *chaosRig) waitUp(t *testing.T, n int) {
	t.Helper()
	testwait.Until(t, 10*time.Second, fmt.Sprintf("%d backends up", n), func() bool {
		st := reloadGetStatus(t, r.admin)
		up := 0
		for _, p := range st.Pools {
			for _, b := range p.Backends {
				if b.State != "up" {
					return false
				}
				up++
			}
		}
		return up == n
	})
}

// alive fails the test if the process has exited.
func (r *chaosRig) alive(t *testing.T) {
	t.Helper()
	select {
	case <-r.p.done:
		t.Fatalf("azimuth exited with code %d", r.p.cmd.ProcessState.ExitCode())
	default:
	}
}

// chaosPlainClient is the loop's keep-alive client for a plain listener.
func chaosPlainClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// chaosCloseIdle closes the clients' idle connections, so the proxy's
// goroutines and descriptors for them go before a count.
func chaosCloseIdle(clients []*http.Client) {
	for _, c := range clients {
		if ci, ok := c.Transport.(interface{ CloseIdleConnections() }); ok {
			ci.CloseIdleConnections()
		}
	}
}

// chaosPhase is how long a fault plays while the loop runs: the length of
// the experiment, not a wait for something to happen.
const chaosPhase = 1500 * time.Millisecond

// chaosPlay is one case: a running proxy, the loop's clients, the fault
// and its end.
type chaosPlay struct {
	rig     *chaosRig
	fleet   *fleet.Fleet
	clients []*http.Client
	// fault puts the fault in force. heal ends it and returns once the
	// proxy is whole again (every backend up, the config applied).
	fault, heal func(t *testing.T)
	expect      chaosExpect
}

// run takes the baseline, starts the loop, plays the fault for
// chaosPhase, heals, lets the loop run on, then checks the outcomes and
// that goroutines and descriptors come back.
func (c chaosPlay) run(t *testing.T) chaosTally {
	t.Helper()
	base := chaosBaseline(t, c.rig.admin)
	load := chaosStartLoad(t, c.clients, c.rig.url)
	load.waitOK(t, "load before the fault", 30)
	c.fault(t)
	time.Sleep(chaosPhase) // the fault plays under load
	c.heal(t)
	c.rig.alive(t)
	c.expect.settled = time.Now()
	load.waitOK(t, "load after the fault", 60)
	tally := chaosCheck(t, load, c.fleet, c.expect)
	chaosCloseIdle(c.clients)
	chaosCheckLeaks(t, c.rig.admin, base)
	return tally
}
