package scenario

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
)

// Phase is a span of the timeline relative to the fault window.
type Phase struct {
	Name     string           `json:"name"`
	From     int              `json:"from_s"` // seconds, [From, To)
	To       int              `json:"to_s"`
	Requests int64            `json:"requests"`
	Failed   int64            `json:"failed"`
	Latency  loadtest.Latency `json:"latency"`
}

// SuccessRate is the share of the phase's requests that succeeded (1 when
// the phase is empty: nothing failed).
func (p Phase) SuccessRate() float64 {
	if p.Requests == 0 {
		return 1
	}
	return float64(p.Requests-p.Failed) / float64(p.Requests)
}

// Report is what a scenario run measured.
type Report struct {
	Scenario *Scenario
	Result   *loadtest.Result
	Applied  []Applied
	// WindowFrom and WindowTo bound the fault window in seconds; HasWindow
	// is false without faults.
	WindowFrom, WindowTo int
	HasWindow            bool
	// Phases are before, during and after the fault window (or one "all"
	// phase without faults); MethodPhases cut them by method.
	Phases       []Phase
	MethodPhases []MethodPhase
	// Config is the azimuth config the run generated.
	Config string
	// FaultEvents follow each fault to its end: detection, hits, per-try.
	FaultEvents []FaultEvent
	// Attempts, Duplicates and ZoneShares are what the backends saw.
	Attempts   Attempts
	Duplicates Duplicates
	ZoneShares ZoneShares
	// Metrics are azimuth's counters after the load; Retries and
	// RetriesOK are its retries by cause, RetriesOK false when absent.
	Metrics   AzimuthMetrics
	Retries   map[string]float64
	RetriesOK bool
	// Probes are the single requests sent beside the load.
	Probes []ProbeResult
	// Status is what polling azimuth's /status saw.
	Status StatusSummary
	// AzimuthStop is the outcome of stopping azimuth with SIGTERM.
	AzimuthStop error
}

func sortEvents(es []Event) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].At < es[j].At })
}

func sortProbes(ps []Probe) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].At < ps[j].At })
}

// newReport cuts the load's result into phases and, given what the runner
// observed besides (nil for none), judges the run from the backends' and
// the proxy's side too.
func newReport(sc *Scenario, res *loadtest.Result, applied []Applied, obs *observations) *Report {
	r := &Report{Scenario: sc, Result: res, Applied: applied, FaultEvents: []FaultEvent{}, Probes: []ProbeResult{},
		Status: StatusSummary{Changes: []StatusChange{}}}
	end := len(res.Timeline)
	from, to, has := sc.FaultWindow()
	r.WindowFrom, r.WindowTo, r.HasWindow = from, to, has
	phase := func(name string, a, b int) Phase {
		n, failed, lat := res.Window(a, b)
		return Phase{Name: name, From: a, To: b, Requests: n, Failed: failed, Latency: lat}
	}
	if has {
		r.Phases = []Phase{phase("before", 0, from), phase("during", from, to), phase("after", to, max(end, to))}
	} else {
		r.Phases = []Phase{phase("all", 0, end)}
	}
	r.MethodPhases = methodPhases(res, r.Phases)
	if obs == nil {
		return r
	}
	r.Config = obs.config
	r.Metrics = obs.metrics
	r.Retries, r.RetriesOK = obs.metrics.RetriesByCause, obs.metrics.RetriesTotal != nil
	if obs.fleet != nil {
		r.FaultEvents = obs.faultEvents(applied)
		r.Attempts.Whole = obs.attempts(res, 0, end, true)
		if has {
			w := obs.attempts(res, from, to, false)
			r.Attempts.FaultWindow = &w
		}
		r.Duplicates = obs.duplicates(sc.Load.EffectiveIDHeader())
		r.ZoneShares = obs.zoneShares(sc.Fleet.Zones, sc.Azimuth.Zone)
	}
	if obs.probes != nil {
		r.Probes = obs.probes
	}
	r.Status = obs.statusSummary()
	return r
}

// Phase returns the phase named name, or an empty one.
func (r *Report) Phase(name string) Phase {
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	return Phase{Name: name}
}

func ms(us int64) string {
	return (time.Duration(us) * time.Microsecond).Round(100 * time.Microsecond).String()
}

// WriteText writes the human summary: success, failures by class, latency
// per phase, traffic share per zone over time, and retries by cause.
func (r *Report) WriteText(w io.Writer) error {
	res := r.Result
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	p("scenario %s: %d requests in %s, %.1f req/s\n", r.Scenario.Name, res.Requests, res.Elapsed.Round(time.Millisecond), res.Throughput)
	r.writeConfig(p)
	p("success    %s (%d of %d)\n", percent(res.Succeeded, res.Requests), res.Succeeded, res.Requests)
	p("failures  ")
	nfail := 0
	for _, c := range []string{"timeout", "refused", "reset", "tls", "other"} {
		if n := res.Errors[c]; n > 0 {
			p(" %s:%d", c, n)
			nfail++
		}
	}
	for _, code := range slices.Sorted(maps.Keys(res.Status)) {
		if code < "200" || code >= "400" {
			p(" http_%s:%d", code, res.Status[code])
			nfail++
		}
	}
	if nfail == 0 {
		p(" none")
	}
	p("\n")
	for _, a := range r.Applied {
		p("fault      %5.2fs %s: %s", a.Offset.Seconds(), a.Target(), a.Fault)
		if a.Err != nil {
			p(" (failed: %v)", a.Err)
		}
		p("\n")
	}
	p("%-8s %9s %10s %9s %9s %9s\n", "phase", "seconds", "requests", "success", "p50", "p99")
	for _, ph := range r.Phases {
		p("%-8s %4d-%-4d %10d %9s %9s %9s\n", ph.Name, ph.From, ph.To, ph.Requests, percent(ph.Requests-ph.Failed, ph.Requests), ms(ph.Latency.P50), ms(ph.Latency.P99))
	}
	r.writeMethodPhases(p)
	r.writeFaultEvents(p)
	r.writeBackendSide(p)
	zones := r.Scenario.Fleet.Zones
	width := 6
	for _, z := range zones {
		width = max(width, len(z))
	}
	p("zone share per second (%% of responses):\n  sec ")
	for _, z := range zones {
		p(" %*s", width, z)
	}
	p("\n")
	for _, s := range res.Timeline {
		mark := " "
		if r.HasWindow && s.Second >= r.WindowFrom && s.Second < r.WindowTo {
			mark = "*"
		}
		p("  %3d%s", s.Second, mark)
		var total int64
		for _, z := range zones {
			total += s.Zones[z]
		}
		for _, z := range zones {
			share := 0.0
			if total > 0 {
				share = 100 * float64(s.Zones[z]) / float64(total)
			}
			p(" %*.1f%%", width-1, share)
		}
		p("\n")
	}
	if r.HasWindow {
		p("  (* fault window)\n")
	}
	r.writeMetrics(p)
	p("retries    ")
	switch {
	case !r.RetriesOK:
		p("unavailable (no azimuth_retries_total series: none yet, or not exported)")
	case len(r.Retries) == 0:
		p("none")
	default:
		for _, c := range slices.Sorted(maps.Keys(r.Retries)) {
			p(" %s:%.0f", c, r.Retries[c])
		}
	}
	p("\n")
	r.writeProbes(p)
	r.writeStatus(p)
	if r.AzimuthStop != nil {
		p("azimuth stop: %v\n", r.AzimuthStop)
	}
	return err
}
