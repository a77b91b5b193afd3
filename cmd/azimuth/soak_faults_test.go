package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// The soak's faults: a backend of the file pool misbehaves once a minute,
// and the Consul agent feeding the other pool restarts once every ten
// minutes, in both cases once in a run shorter than that (the 60s run in
// CI), while the load and the reloads go on. Both are steps of the soak's
// own loop, taken on its reload tick: one goroutine drives the proxy, so
// the faults and the reloads never race, and a failing step can end the
// test.

// soakFaultTarget is the backend the faults play on: a backend of the
// local zone present in both configs, so it takes traffic throughout and
// its health state carries across every reload.
const soakFaultTarget = "zone-a-1"

// soakFaultKinds are played in turn: the backend hung, refusing
// connections, slow (past the pool's per-try time, which is learned in
// milliseconds here, and past its health check timeout), and resetting
// each connection after reading the request. The reset is the one before
// any response byte: a reset in the middle of a body cannot be retried,
// so an idempotent request fails by design (the chaos suite plays that
// one, TestChaosBackendFaults).
var soakFaultKinds = []fleet.Fault{
	{Kind: fleet.Blackhole},
	{Kind: fleet.Refuse},
	{Kind: fleet.Slow, Delay: time.Second},
	{Kind: fleet.ResetBeforeHeaders},
}

// soakSettle is how long after a fault or a restart has ended the samples
// wait: requests a fault held, hedges it caused and connections it broke
// end within it. Samples are for leaks, which outlast it; what a fault
// holds while it plays is not one.
const soakSettle = 4 * time.Second

// soakPlan is when the faults and the restarts start, as offsets from the
// start of the run.
type soakPlan struct {
	faults, restarts []time.Duration
	// faultFor is how long each fault and each absence of the agent lasts.
	faultFor time.Duration
}

// soakSchedule plans a run of d: a fault a quarter into each minute (one
// in a run under two minutes, a quarter in), for 10s (a twelfth of the run
// when that is shorter: 5s in the 60s run, so CI's soak stays 60s); a
// restart every ten minutes (one in a shorter run), near the middle of
// its ten minutes and three fifths into a fault period (36s in a minute),
// so it falls between two faults.
func soakSchedule(d time.Duration) soakPlan {
	n := max(1, int(d/time.Minute))
	period := d / time.Duration(n)
	p := soakPlan{faultFor: min(10*time.Second, d/12)}
	for i := range n {
		p.faults = append(p.faults, time.Duration(i)*period+period/4)
	}
	m := max(1, int(d/(10*time.Minute)))
	every := d / time.Duration(m)
	for j := range m {
		at := time.Duration(j)*every + every/2
		p.restarts = append(p.restarts, at.Truncate(period)+period*3/5)
	}
	return p
}

// soakPhase is where an event stands.
type soakPhase int

const (
	soakIdle soakPhase = iota
	soakFaulted
	soakHealing
	soakAgentAway
	soakAgentBack
	soakRefilling
)

// soakFaults plays the plan.
type soakFaults struct {
	plan  soakPlan
	start time.Time
	admin string
	web   *fleet.Fleet
	svc   []*fleet.Backend // the Consul pool's backends
	agent *consultest.Agent

	// The backend fault under way.
	fault        soakPhase
	nextFault    int
	faultAt      time.Time
	faultDowns   float64 // the target's health transitions to down or ejected before it
	faultTimeout time.Time
	windows      []soakWindow

	// The restart under way.
	restart        soakPhase
	nextRestart    int
	restartAt      time.Time
	restartTimeout time.Time
	sawGone        bool
	// stopTook and startTook are how long the agent took to stop and to
	// start again (consultest waits for a leader), for the report.
	stopTook, startTook time.Duration

	lastEnd time.Time // when the last event ended
	log     []string  // one line per event, for the report
}

// busy reports whether an event is under way.
func (f *soakFaults) busy() bool { return f.fault != soakIdle || f.restart != soakIdle }

// quiet reports whether a sample now compares with the others: nothing
// under way, and the last event soakSettle behind.
func (f *soakFaults) quiet(now time.Time) bool {
	return !f.busy() && now.Sub(f.lastEnd) >= soakSettle
}

// done reports whether every planned event has been played.
func (f *soakFaults) done() bool {
	return !f.busy() && f.nextFault == len(f.plan.faults) && f.nextRestart == len(f.plan.restarts)
}

// step moves both events on by what is due now. It never waits for the
// proxy: each phase looks once per tick and fails the test past its
// deadline.
func (f *soakFaults) step(t *testing.T, now time.Time) {
	t.Helper()
	f.stepFault(t, now)
	f.stepRestart(t, now)
}

// soakEventTimeout bounds each phase that waits for the proxy.
const soakEventTimeout = 20 * time.Second

func (f *soakFaults) stepFault(t *testing.T, now time.Time) {
	t.Helper()
	target := f.web.Backend(soakFaultTarget)
	switch f.fault {
	case soakIdle:
		if f.nextFault == len(f.plan.faults) || now.Sub(f.start) < f.plan.faults[f.nextFault] {
			return
		}
		fault := soakFaultKinds[f.nextFault%len(soakFaultKinds)]
		f.faultDowns = soakOutTransitions(t, f.admin, target.Addr)
		f.faultAt = time.Now()
		if err := target.Apply(fault); err != nil {
			t.Fatalf("fault %d: %v", f.nextFault+1, err)
		}
		f.fault = soakFaulted
	case soakFaulted:
		if now.Sub(f.faultAt) < f.plan.faultFor {
			return
		}
		if err := target.Apply(fleet.Fault{Kind: fleet.Restore}); err != nil {
			t.Fatalf("restoring %s: %v", target.Name, err)
		}
		f.fault, f.faultTimeout = soakHealing, now.Add(soakEventTimeout)
	case soakHealing:
		if soakBackendState(t, f.admin, "web", target.Addr) != "up" {
			if now.After(f.faultTimeout) {
				t.Fatalf("fault %d: %s not up %v after its restore", f.nextFault+1, target.Name, soakEventTimeout)
			}
			return
		}
		end := time.Now()
		fault := soakFaultKinds[f.nextFault%len(soakFaultKinds)]
		f.windows = append(f.windows, soakWindow{pool: 0, from: f.faultAt, to: end})
		// A fault the proxy never noticed tested nothing.
		downs := soakOutTransitions(t, f.admin, target.Addr) - f.faultDowns
		if downs < 1 {
			t.Errorf("fault %d (%s): %s was never marked down or ejected", f.nextFault+1, fault, target.Name)
		}
		f.log = append(f.log, fmt.Sprintf("fault %d at %v: %s on %s for %v, taken out %v time(s), up again %v after the restore",
			f.nextFault+1, f.faultAt.Sub(f.start).Round(time.Second), fault, target.Name, f.plan.faultFor, downs,
			end.Sub(f.faultAt.Add(f.plan.faultFor)).Round(100*time.Millisecond)))
		f.nextFault++
		f.fault, f.lastEnd = soakIdle, end
	}
}

func (f *soakFaults) stepRestart(t *testing.T, now time.Time) {
	t.Helper()
	switch f.restart {
	case soakIdle:
		if f.nextRestart == len(f.plan.restarts) || now.Sub(f.start) < f.plan.restarts[f.nextRestart] {
			return
		}
		f.restartAt = time.Now()
		f.agent.Stop()
		f.stopTook = time.Since(f.restartAt)
		f.restart, f.sawGone, f.restartTimeout = soakAgentAway, false, now.Add(f.plan.faultFor+soakEventTimeout)
	case soakAgentAway:
		st := soakPoolNow(t, f.admin, "svc")
		f.sawGone = f.sawGone || !st.synced
		if st.backends != len(f.svc) {
			t.Errorf("with the agent away the Consul pool has %d backends, want the last %d", st.backends, len(f.svc))
		}
		switch {
		case f.sawGone && now.Sub(f.restartAt) >= f.plan.faultFor:
			began := time.Now()
			f.agent.Restart() // a -dev agent comes back empty
			f.startTook = time.Since(began)
			f.restart, f.restartTimeout = soakAgentBack, time.Now().Add(soakEventTimeout)
		case now.After(f.restartTimeout):
			t.Fatalf("restart %d: the watcher never saw the agent gone", f.nextRestart+1)
		}
	case soakAgentBack:
		st := soakPoolNow(t, f.admin, "svc")
		if st.backends != len(f.svc) {
			t.Errorf("against the empty agent the Consul pool has %d backends, want the last %d", st.backends, len(f.svc))
		}
		switch {
		case st.synced && st.holding:
			chaosRegister(t, f.agent, f.svc)
			f.restart, f.restartTimeout = soakRefilling, now.Add(soakEventTimeout)
		case now.After(f.restartTimeout):
			t.Fatalf("restart %d: the watcher never held its set against the empty agent", f.nextRestart+1)
		}
	case soakRefilling:
		st := soakPoolNow(t, f.admin, "svc")
		if !st.synced || st.holding || st.backends != len(f.svc) || st.up != len(f.svc) {
			if now.After(f.restartTimeout) {
				t.Fatalf("restart %d: the Consul pool never followed the agent again: %+v", f.nextRestart+1, st)
			}
			return
		}
		end := time.Now()
		f.log = append(f.log, fmt.Sprintf("Consul restart %d at %v: the agent took %v to stop, was away at least %v, took %v to start; pool whole again %v after the stop",
			f.nextRestart+1, f.restartAt.Sub(f.start).Round(time.Second), f.stopTook.Round(100*time.Millisecond), f.plan.faultFor,
			f.startTook.Round(100*time.Millisecond), end.Sub(f.restartAt).Round(100*time.Millisecond)))
		f.nextRestart++
		f.restart, f.lastEnd = soakIdle, end
	}
}

// soakPoolState is one pool as /status shows it.
type soakPoolState struct {
	backends, up    int
	synced, holding bool
}

// soakPoolNow reads the named pool from /status.
func soakPoolNow(t *testing.T, admin, pool string) soakPoolState {
	t.Helper()
	var s soakPoolState
	for _, p := range reloadGetStatus(t, admin).Pools {
		if p.Name != pool {
			continue
		}
		for _, b := range p.Backends {
			s.backends++
			if b.State == "up" {
				s.up++
			}
		}
		if p.Consul != nil {
			s.synced, s.holding = p.Consul.Synced, p.Consul.Holding
		}
	}
	return s
}

// soakBackendState is a backend's state in a pool per /status, "" if it
// is not there.
func soakBackendState(t *testing.T, admin, pool, addr string) string {
	t.Helper()
	for _, p := range reloadGetStatus(t, admin).Pools {
		for _, b := range p.Backends {
			if p.Name == pool && b.Address == addr {
				return b.State
			}
		}
	}
	return ""
}

// soakOutTransitions is how many times the backend was taken out (down
// or ejected) so far, over every pool.
func soakOutTransitions(t *testing.T, admin, addr string) float64 {
	t.Helper()
	var n float64
	for _, m := range obsSeries(obsScrape(t, admin, ""), "azimuth_backend_health_transitions_total", map[string]string{"backend": addr}) {
		for _, l := range m.GetLabel() {
			if l.GetName() == "to" && (l.GetValue() == "down" || l.GetValue() == "ejected") {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// soakMetricSum sums every series of a counter family, for the report.
func soakMetricSum(t *testing.T, admin, name string) float64 {
	t.Helper()
	var n float64
	for _, m := range obsSeries(obsScrape(t, admin, ""), name, nil) {
		n += m.GetCounter().GetValue()
	}
	return n
}

// report is the events played, one per line.
func (f *soakFaults) report() string { return strings.Join(f.log, "\n") }

// soakLogSummary counts the process's log lines above info by level and
// message, for the report: a soak that passes can still have logged what
// deserves a look.
func soakLogSummary(p *process) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	counts := map[string]int{}
	for _, l := range p.logs {
		if lv, _ := l["level"].(string); lv == "WARN" || lv == "ERROR" {
			msg, _ := l["msg"].(string)
			counts[lv+" "+msg]++
		}
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "\n%6d %s", counts[k], k)
	}
	if b.Len() == 0 {
		return " none"
	}
	return b.String()
}
