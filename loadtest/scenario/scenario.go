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
	// IDHeader names a header given a unique value per request.
	IDHeader string
	// TLS puts the proxy's listener behind TLS (a self-signed certificate
	// made for the run); h3 implies it.
	TLS bool
}

// Azimuth is the proxy under test and the settings of the config the
// runner writes for it.
type Azimuth struct {
	// Binary is the azimuth executable; a run option may override it.
	Binary string
	// Zone is the proxy's own zone, one of the fleet's.
	Zone               string
	ConnectTimeout     time.Duration
	PerTryTimeout      time.Duration
	RequestTimeout     time.Duration
	Attempts           int
	RetryOn            []string
	BudgetPercent      int
	BudgetMin          int
	HealthInterval     time.Duration
	HealthTimeout      time.Duration
	Rise, Fall         int
	ConsecutiveFailure int
	Ejection           time.Duration
	MaxEjectedPercent  int
	SpillBelow         float64
	PanicBelow         float64
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
// leave out.
func Default() *Scenario {
	return &Scenario{
		Fleet: Fleet{Zones: []string{"a", "b", "c"}, PerZone: 2, Latency: fleet.Latency{Fixed: 2 * time.Millisecond, Jitter: 2 * time.Millisecond}, Seed: 1},
		Load: Load{
			Rate: 500, Duration: 20 * time.Second, Method: "GET", Path: "/",
			Protocol: loadtest.H1, Timeout: 2 * time.Second,
		},
		Azimuth: Azimuth{
			ConnectTimeout: 100 * time.Millisecond, PerTryTimeout: 250 * time.Millisecond, RequestTimeout: 3 * time.Second,
			Attempts: 3, RetryOn: []string{"connect_failure", "timeout", "reset", "503"},
			BudgetPercent: 50, BudgetMin: 20,
			HealthInterval: 500 * time.Millisecond, HealthTimeout: 200 * time.Millisecond, Rise: 2, Fall: 2,
			ConsecutiveFailure: 3, Ejection: 5 * time.Second, MaxEjectedPercent: 50,
			SpillBelow: 0.7, PanicBelow: 0.3,
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
