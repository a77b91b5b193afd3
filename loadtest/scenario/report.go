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
	// phase without faults).
	Phases []Phase
	// Retries sums azimuth_retries_total by cause, read from azimuth's
	// /metrics after the load; RetriesOK is false when unavailable.
	Retries   map[string]float64
	RetriesOK bool
	// AzimuthStop is the outcome of stopping azimuth with SIGTERM.
	AzimuthStop error
}

func sortEvents(es []Event) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].At < es[j].At })
}

func newReport(sc *Scenario, res *loadtest.Result, applied []Applied, retries map[string]float64, ok bool) *Report {
	r := &Report{Scenario: sc, Result: res, Applied: applied, Retries: retries, RetriesOK: ok}
	end := len(res.Timeline)
	from, to, has := sc.FaultWindow()
	r.WindowFrom, r.WindowTo, r.HasWindow = from, to, has
	phase := func(name string, a, b int) Phase {
		n, failed, lat := res.Window(a, b)
		return Phase{Name: name, From: a, To: b, Requests: n, Failed: failed, Latency: lat}
	}
	if !has {
		r.Phases = []Phase{phase("all", 0, end)}
		return r
	}
	r.Phases = []Phase{phase("before", 0, from), phase("during", from, to), phase("after", to, max(end, to))}
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
	p("success    %.3f%% (%d of %d)\n", 100*res.SuccessRate(), res.Succeeded, res.Requests)
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
		p("%-8s %4d-%-4d %10d %8.3f%% %9s %9s\n", ph.Name, ph.From, ph.To, ph.Requests, 100*ph.SuccessRate(), ms(ph.Latency.P50), ms(ph.Latency.P99))
	}
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
	p("retries    ")
	switch {
	case !r.RetriesOK:
		p("unavailable (azimuth_retries_total not exported)")
	case len(r.Retries) == 0:
		p("none")
	default:
		for _, c := range slices.Sorted(maps.Keys(r.Retries)) {
			p(" %s:%.0f", c, r.Retries[c])
		}
	}
	p("\n")
	if r.AzimuthStop != nil {
		p("azimuth stop: %v\n", r.AzimuthStop)
	}
	return err
}

// JSONReport is the report's machine-readable form.
type JSONReport struct {
	Scenario   string             `json:"scenario"`
	Result     *loadtest.Result   `json:"result"`
	Phases     []Phase            `json:"phases"`
	FaultFrom  *int               `json:"fault_window_from_s,omitempty"`
	FaultTo    *int               `json:"fault_window_to_s,omitempty"`
	Faults     []JSONFault        `json:"faults"`
	Retries    map[string]float64 `json:"retries_by_cause"`
	RetriesOK  bool               `json:"retries_available"`
	StopFailed string             `json:"azimuth_stop_error,omitempty"`
}

// JSONFault is one applied fault in JSONReport.
type JSONFault struct {
	AtSeconds float64 `json:"at_s"`
	Target    string  `json:"target"`
	Fault     string  `json:"fault"`
	Error     string  `json:"error,omitempty"`
}

// JSON returns the report's machine-readable form.
func (r *Report) JSON() JSONReport {
	j := JSONReport{Scenario: r.Scenario.Name, Result: r.Result, Phases: r.Phases, Retries: r.Retries, RetriesOK: r.RetriesOK, Faults: []JSONFault{}}
	if r.HasWindow {
		j.FaultFrom, j.FaultTo = &r.WindowFrom, &r.WindowTo
	}
	for _, a := range r.Applied {
		f := JSONFault{AtSeconds: a.Offset.Seconds(), Target: a.Target(), Fault: a.Fault.String()}
		if a.Err != nil {
			f.Error = a.Err.Error()
		}
		j.Faults = append(j.Faults, f)
	}
	if r.AzimuthStop != nil {
		j.StopFailed = r.AzimuthStop.Error()
	}
	return j
}
