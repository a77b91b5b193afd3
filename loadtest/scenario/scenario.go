// Package scenario plays out outages against a real azimuth: it starts a
// fleet of zone-tagged backends on loopback, writes an azimuth config for
// them, starts the azimuth binary, drives load through it, applies faults
// on a timeline, and reports what clients saw before, during and after.
package scenario

import (
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// Scenario is one scenario file, decoded and defaulted.
type Scenario struct {
	// Name labels reports; the file name by default.
	Name    string
	Fleet   Fleet
	Load    Load
	Azimuth Azimuth
	Faults  []Event
	// Probes are single requests sent beside the load, each reported on
	// its own (e.g. one legitimately slow request in a fast pool).
	Probes []Probe
}

// Probe is one request sent once, At into the load, through azimuth.
type Probe struct {
	At     time.Duration
	Method string
	// Path is the request's path and query, e.g. /sleep?d=5s.
	Path string
	// Line is where the probe was written, for error messages.
	Line int
}

// Fleet is the backends to start.
type Fleet struct {
	Zones   []string
	PerZone int
	Latency fleet.Latency
	Seed    uint64
}

// Load is the traffic sent through azimuth.
type Load struct {
	Rate        float64
	Concurrency int
	Duration    time.Duration
	Requests    int64
	Method      string
	Path        string
	Protocol    loadtest.Protocol
	Timeout     time.Duration
	Headers     map[string]string
	Body        string
	// Mix, when set, replaces Method and Body: requests take their method
	// and body from its entries in proportion to their weights (see
	// loadtest.Options.Mix).
	Mix []loadtest.MixEntry
	// IDHeader names a header given a unique value per request; with a
	// mix, loadtest.DefaultIDHeader when empty. The fleet counts each
	// value's arrivals, so a request delivered twice shows.
	IDHeader string
	// TLS puts the proxy's listener behind TLS (a self-signed certificate
	// made for the run); h3 implies it.
	TLS bool
}

// Azimuth is the proxy under test and the settings of the config the
// runner writes for it. Every setting is optional: nil (or a nil list)
// leaves its key out of the config, so the proxy's own default applies. A
// set zero is written, since zero can be meant.
type Azimuth struct {
	// Binary is the azimuth executable; a run option may override it.
	Binary string
	// Zone is the proxy's own zone, one of the fleet's; the fleet's first
	// zone when empty.
	Zone string

	ConnectTimeout *time.Duration // timeouts.connect
	// PerTryTimeout is timeouts.per_try: "auto", "off" or a duration.
	PerTryTimeout     *string
	RequestTimeout    *time.Duration // timeouts.request
	Attempts          *int           // retry.attempts
	RetryOn           []string       // retry.on
	IdempotencyHeader *string        // retry.idempotency_header
	// BudgetPercent, BudgetMinPerSecond and BudgetWindow are
	// retry.budget's percent, min_per_second and window.
	BudgetPercent      *int
	BudgetMinPerSecond *float64
	BudgetWindow       *time.Duration
	// HealthPath, HealthInterval, HealthTimeout, Rise and Fall are
	// health.active's keys; the block is written when one is set, with
	// path /healthz unless HealthPath says otherwise.
	HealthPath          *string
	HealthInterval      *time.Duration
	HealthTimeout       *time.Duration
	Rise, Fall          *int
	ConsecutiveFailures *int           // health.passive.consecutive_failures
	Ejection            *time.Duration // health.passive.ejection
	MaxEjectedPercent   *int           // health.passive.max_ejected_percent
	SpillBelow          *float64       // zones.spill_below
	PanicBelow          *float64       // zones.panic_below
}

// hasActiveHealth reports whether the scenario sets any health.active key.
func (a Azimuth) hasActiveHealth() bool {
	return a.HealthPath != nil || a.HealthInterval != nil || a.HealthTimeout != nil || a.Rise != nil || a.Fall != nil
}

// Event is one fault on the timeline, aimed at a zone or a backend.
type Event struct {
	At      time.Duration
	Zone    string
	Backend string
	Fault   fleet.Fault
	// Line is where the event was written, for error messages.
	Line int
}

// Target names what the event hits, for reports.
func (e Event) Target() string {
	if e.Backend != "" {
		return "backend " + e.Backend
	}
	return "zone " + e.Zone
}

// Default returns a scenario with every default set: the fields a file may
// leave out. It sets no azimuth key: a scenario tests the proxy as a new
// user would run it, with its own defaults, unless it says otherwise.
func Default() *Scenario {
	return &Scenario{
		Fleet: Fleet{Zones: []string{"a", "b", "c"}, PerZone: 2, Latency: fleet.Latency{Fixed: 2 * time.Millisecond, Jitter: 2 * time.Millisecond}, Seed: 1},
		Load: Load{
			Rate: 500, Duration: 20 * time.Second, Method: "GET", Path: "/",
			Protocol: loadtest.H1, Timeout: 2 * time.Second,
		},
	}
}

// FaultWindow returns the span from the first fault to the restore that
// ends the last one (or the end of the load), in whole seconds of the
// timeline; ok is false when the scenario has no faults.
func (s *Scenario) FaultWindow() (from, to int, ok bool) {
	first, last := time.Duration(-1), time.Duration(-1)
	for _, e := range s.Faults {
		if e.Fault.Kind == fleet.Restore {
			if e.At > last {
				last = e.At
			}
			continue
		}
		if first < 0 || e.At < first {
			first = e.At
		}
	}
	if first < 0 {
		return 0, 0, false
	}
	if last < first {
		last = s.Load.Duration
	}
	return int(first / time.Second), int((last + time.Second - 1) / time.Second), true
}

// EffectiveIDHeader is the header that carries each request's ID: the
// scenario's, or with a mix loadtest.DefaultIDHeader; "" for none.
func (l Load) EffectiveIDHeader() string {
	if l.IDHeader == "" && len(l.Mix) > 0 {
		return loadtest.DefaultIDHeader
	}
	return l.IDHeader
}
