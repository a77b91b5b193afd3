package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The zone-failure suite proves the product's promise with the config a
// new user writes: a pool with only a name and backends. While a zone (or
// one backend) hangs, refuses, slows or resets, no GET fails, no POST is
// delivered twice, the slow tail stays within one per-try timeout of
// normal, the proxy stops sending to what it has found broken, and a
// healed own zone takes its traffic back.
//
// Timeline of every case: 2 s warm-up (a learned per-try value and a
// steady state to fault), 4 s of fault (long enough for detection, which
// takes well under a second, and then a few seconds of steady fault
// handling to measure), 4 s after the restore (the healed zone must be
// back before the last 2 s, which are judged). 10 s of load plus about a
// second of setup is 11 s a case, and 22 cases make the suite about four
// minutes: shorter phases would leave the fault window's tail statistics
// to a few hundred requests, longer ones would double the suite's time.
const (
	warmUp   = 2 * time.Second
	faultFor = 4 * time.Second
	afterFor = 4 * time.Second
	// clientTimeout is the load's per-request timeout: long enough that
	// a proxy that makes clients wait instead of failing them shows as
	// latency, not as errors.
	clientTimeout = 10 * time.Second
	// caseLimit bounds one azload process: the load, plus requests still
	// in flight at its end (at most clientTimeout), plus setup and drain.
	caseLimit = 90 * time.Second
)

// zoneCase is one fault on one target under one load.
type zoneCase struct {
	name   string // own/blackhole/closed64
	own    bool   // the proxy's own zone (or a backend in it) is faulted
	target string // `zone: zone-a` or `backend: zone-a-1`
	fault  string
	load   string // the load's loop keys
}

const (
	closed64  = "concurrency: 64"
	closed256 = "concurrency: 256"
	open2000  = "rate: 2000"
)

// zoneCases are: for the own zone and a foreign one, each of blackhole,
// refuse, slow 800ms, reset before headers, and one blackholed backend,
// under closed-loop 64; the own-zone cases also under closed-loop 256 and
// open-loop 2,000 req/s.
func zoneCases() []zoneCase {
	faults := []struct{ name, fault string }{
		{"blackhole", "blackhole"}, {"refuse", "refuse"}, {"slow800ms", `"slow: 800ms"`},
		{"reset_before_headers", "reset_before_headers"}, {"backend_blackhole", "blackhole"},
	}
	loads := []struct{ name, keys string }{{"closed64", closed64}, {"closed256", closed256}, {"open2000", open2000}}
	var out []zoneCase
	for _, side := range []struct {
		name, zone string
		own        bool
	}{{"own", "zone-a", true}, {"foreign", "zone-b", false}} {
		for _, f := range faults {
			target := "zone: " + side.zone
			if f.name == "backend_blackhole" {
				target = "backend: " + side.zone + "-1"
			}
			for _, l := range loads {
				if !side.own && l.keys != closed64 {
					continue
				}
				out = append(out, zoneCase{name: side.name + "/" + f.name + "/" + l.name, own: side.own, target: target, fault: f.fault, load: l.keys})
			}
		}
	}
	return out
}

// spec is the case's scenario file: three zones of two backends at 1ms,
// the proxy in zone-a (the first), no azimuth key at all, 90% GET and 10%
// POST without an idempotency key.
func (c zoneCase) spec() string {
	return fmt.Sprintf(`name: %s
fleet:
  zones: [zone-a, zone-b, zone-c]
  backends_per_zone: 2
  latency: { fixed: 1ms }
load:
  %s
  duration: %s
  timeout: %s
  mix:
    - { method: GET, weight: 90 }
    - { method: POST, weight: 10 }
faults:
  - { at: %s, %s, fault: %s }
  - { at: %s, %s, fault: restore }
`, strings.ReplaceAll(c.name, "/", "-"), c.load, warmUp+faultFor+afterFor, clientTimeout,
		warmUp, c.target, c.fault, warmUp+faultFor, c.target)
}

func TestZoneFailures(t *testing.T) {
	needAzimuth(t)
	needAzload(t)
	var table []string
	t.Cleanup(func() { t.Logf("zone-failure suite:\n%s", strings.Join(table, "\n")) })
	for _, c := range zoneCases() {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			rep := runScenario(t, c.spec(), caseLimit)
			line := fmt.Sprintf("%-40s %s (%v)", c.name, rep.summary(), time.Since(began).Round(time.Second))
			table = append(table, line)
			t.Log(line)
			checkDefaultsOnly(t, rep)
			checkGETs(t, rep)
			checkPOSTsOnce(t, rep)
			checkTail(t, rep)
			checkLateHits(t, rep)
			if c.own && rep.ZoneShares.OwnShare < 0.9 {
				t.Errorf("after the restore, zone-a took %.3f of the backend hits of the last 2s (shares %v), want ≥ 0.9: the healed own zone must take its traffic back",
					rep.ZoneShares.OwnShare, rep.ZoneShares.Shares)
			}
			if rep.StopError != "" {
				t.Errorf("azimuth did not stop cleanly: %s", rep.StopError)
			}
		})
	}
}

// checkDefaultsOnly proves the run used the config a new user writes.
func checkDefaultsOnly(t *testing.T, rep *scenarioReport) {
	t.Helper()
	if !defaultsOnlyPool.MatchString(rep.Pool) || rep.OwnZone != "zone-a" {
		t.Fatalf("azimuth ran with (own zone %q):\n%s\nwant zone-a and a pool of only a name and backends", rep.OwnZone, rep.Pool)
	}
}

// checkGETs: 100.000% of GETs succeed in every phase.
func checkGETs(t *testing.T, rep *scenarioReport) {
	t.Helper()
	n := 0
	for _, p := range rep.MethodPhases {
		if p.Method != "GET" {
			continue
		}
		n++
		if p.Sent == 0 || p.Succeeded != p.Sent || p.SuccessPercent != "100.000%" {
			t.Errorf("phase %s: %d of %d GETs succeeded (%s), want 100.000%%", p.Phase, p.Succeeded, p.Sent, p.SuccessPercent)
		}
	}
	if n == 0 {
		t.Errorf("the report has no GET phase")
	}
}

// checkPOSTsOnce: no POST without an idempotency key arrives twice.
func checkPOSTsOnce(t *testing.T, rep *scenarioReport) {
	t.Helper()
	d := rep.Duplicates
	if d.IDHeader == "" || d.ByMethod["POST"].IDs == 0 {
		t.Fatalf("the backends counted no POST IDs (id header %q): the duplicate check measured nothing", d.IDHeader)
	}
	if d.NonIdempotent != 0 {
		t.Errorf("%d POSTs were delivered twice or more (of %d): a request that is not safe to replay was replayed", d.NonIdempotent, d.ByMethod["POST"].IDs)
	}
}

// checkTail: during the fault, GET p99 stays within the highest per-try
// value in force plus 50 ms: one slow try, then an answer.
func checkTail(t *testing.T, rep *scenarioReport) {
	t.Helper()
	p, ok := rep.phase("during", "GET")
	if !ok || len(rep.FaultEvents) == 0 {
		t.Fatalf("no GET phase or fault event during the fault")
	}
	e := rep.FaultEvents[0]
	if e.PerTryMaxMS == nil {
		t.Errorf("azimuth's /status reports no per-try timeout, so the fault's GET p99 (%s) cannot be held to one: want pools[].per_try", usDur(p.P99))
		return
	}
	limit := time.Duration(*e.PerTryMaxMS*float64(time.Millisecond)) + 50*time.Millisecond
	if got := time.Duration(p.P99) * time.Microsecond; got > limit {
		t.Errorf("GET p99 during the fault %v, want ≤ %v (highest per-try %s + 50ms)", got.Round(100*time.Microsecond), limit, msDur(*e.PerTryMaxMS))
	}
}

// checkLateHits: once azimuth shows a target unavailable, at most 10
// requests still reach it.
func checkLateHits(t *testing.T, rep *scenarioReport) {
	t.Helper()
	for _, e := range rep.FaultEvents {
		if e.HitsAfterDetection > 10 {
			t.Errorf("%s (%s): %d requests reached it after azimuth showed it unavailable (%s), want ≤ 10",
				e.Target, e.Fault, e.HitsAfterDetection, e.detection())
		}
	}
}

// TestSlowRequestInFastPool sends one request that legitimately takes 5s
// into a pool serving a steady fast load: the per-try timeout learned from
// the fast requests must not kill it.
func TestSlowRequestInFastPool(t *testing.T) {
	needAzimuth(t)
	needAzload(t)
	spec := fmt.Sprintf(`name: slow-request-in-fast-pool
fleet:
  zones: [zone-a, zone-b, zone-c]
  backends_per_zone: 2
  latency: { fixed: 1ms }
load:
  concurrency: 64
  duration: 8s
  timeout: %s
  mix:
    - { method: GET, weight: 90 }
    - { method: POST, weight: 10 }
probes:
  - { at: 2s, path: "/sleep?d=5s" }
`, clientTimeout)
	rep := runScenario(t, spec, caseLimit)
	t.Logf("slow request in a fast pool: %s", rep.summary())
	checkDefaultsOnly(t, rep)
	checkGETs(t, rep)
	checkPOSTsOnce(t, rep)
	if len(rep.Probes) != 1 {
		t.Fatalf("probes %+v, want the one slow request", rep.Probes)
	}
	pr := rep.Probes[0]
	t.Logf("the 5s request: status %d in %s %s", pr.Status, msDur(pr.LatencyMS), pr.Error)
	if pr.Status != 200 || pr.LatencyMS < 4900 || pr.LatencyMS > 6000 {
		t.Errorf("the 5s request got status %d after %s (%s), want 200 after about 5s", pr.Status, msDur(pr.LatencyMS), pr.Error)
	}
}

// TestEveryZoneSlow makes every zone 800ms slower for the fault window:
// there is nowhere better to go, so retries and hedges must stay within
// the retry budget instead of multiplying the load, and answers must stay
// as fast as the backends allow.
func TestEveryZoneSlow(t *testing.T) {
	needAzimuth(t)
	needAzload(t)
	var faults strings.Builder
	for _, z := range []string{"zone-a", "zone-b", "zone-c"} {
		fmt.Fprintf(&faults, "  - { at: %s, zone: %s, fault: \"slow: 800ms\" }\n", warmUp, z)
		fmt.Fprintf(&faults, "  - { at: %s, zone: %s, fault: restore }\n", warmUp+faultFor, z)
	}
	spec := fmt.Sprintf(`name: every-zone-slow
fleet:
  zones: [zone-a, zone-b, zone-c]
  backends_per_zone: 2
  latency: { fixed: 1ms }
load:
  concurrency: 64
  duration: %s
  timeout: %s
  mix:
    - { method: GET, weight: 90 }
    - { method: POST, weight: 10 }
faults:
%s`, warmUp+faultFor+afterFor, clientTimeout, faults.String())
	rep := runScenario(t, spec, caseLimit)
	t.Logf("every zone slow: %s; retries refused %v", rep.summary(), rep.Metrics.RetriesRefused)
	checkDefaultsOnly(t, rep)
	checkGETs(t, rep)
	checkPOSTsOnce(t, rep)
	w := rep.Attempts.FaultWindow
	if w == nil {
		t.Fatal("the report has no fault window")
	}
	// The budget (the defaults: 20%, 10 a second, a 10s window): within
	// any 10s, retries and hedges are at most 20% of the requests of those
	// 10s plus the floor's reserve of 100. The warm-up and the fault fit
	// in one window, so its requests count from the start of the load.
	if warmUp+faultFor > 10*time.Second {
		t.Fatal("the bound below assumes the warm-up and the fault fit in the budget's 10s window")
	}
	var sent int64
	for _, p := range rep.MethodPhases {
		if p.Phase == "before" || p.Phase == "during" {
			sent += p.Sent
		}
	}
	allowed := 0.2*float64(sent) + 10*10
	if extra := float64(w.BackendHits - w.Sent); extra > allowed {
		t.Errorf("backends received %d requests for %d sent in the fault window: %.0f retries and hedges, want ≤ %.0f (20%% of the %d requests since the load began, and the reserve of 100)",
			w.BackendHits, w.Sent, extra, allowed, sent)
	}
	// Fast: no answer waits much longer than the slow backends make it.
	if p, ok := rep.phase("during", "GET"); !ok || time.Duration(p.P99)*time.Microsecond > 1500*time.Millisecond {
		t.Errorf("GET p99 during the fault %v, want ≤ 1.5s with every backend 800ms slower", time.Duration(p.P99)*time.Microsecond)
	}
}
