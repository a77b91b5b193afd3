package scenario

import (
	"fmt"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// DemoOptions shorten the built-in demo, for CI.
type DemoOptions struct {
	Duration    time.Duration // 20s by default
	Rate        float64       // 500 by default
	FaultFrom   time.Duration // 5s by default
	FaultTo     time.Duration // 15s by default
	Binary      string
	Fault       string        // "blackhole" by default; any ParseFault form
	PerTryLimit time.Duration // overrides azimuth's per-try timeout; the proxy's default when zero
}

// Demo returns the built-in scenario: 3 zones × 2 backends, load at a fixed
// rate, and the proxy's own zone blackholed for a window in the middle.
// Azimuth runs with a pool of only a name and backends, as a new user
// would write it: the demo shows what its defaults do.
func Demo(o DemoOptions) (*Scenario, error) {
	sc := Default()
	sc.Name = "demo"
	if o.Duration == 0 {
		o.Duration = 20 * time.Second
	}
	if o.Rate == 0 {
		o.Rate = 500
	}
	if o.FaultFrom == 0 && o.FaultTo == 0 {
		o.FaultFrom, o.FaultTo = 5*time.Second, 15*time.Second
	}
	if o.Fault == "" {
		o.Fault = string(fleet.Blackhole)
	}
	if o.FaultFrom < 0 || o.FaultTo <= o.FaultFrom || o.FaultTo > o.Duration {
		return nil, fmt.Errorf("demo fault window %v-%v: want 0 ≤ from < to ≤ duration (%v)", o.FaultFrom, o.FaultTo, o.Duration)
	}
	if o.Rate < 0 {
		return nil, fmt.Errorf("demo rate %v: must be positive", o.Rate)
	}
	sc.Load.Duration = o.Duration
	sc.Load.Rate = o.Rate
	sc.Azimuth.Binary = o.Binary
	sc.Azimuth.Zone = sc.Fleet.Zones[0]
	if o.PerTryLimit > 0 {
		sc.Azimuth.PerTryTimeout = new(o.PerTryLimit.String())
	}
	f, err := fleet.ParseFault(o.Fault)
	if err != nil {
		return nil, fmt.Errorf("demo fault: %w", err)
	}
	sc.Faults = []Event{{At: o.FaultFrom, Zone: sc.Azimuth.Zone, Fault: f}}
	if o.FaultTo < o.Duration {
		sc.Faults = append(sc.Faults, Event{At: o.FaultTo, Zone: sc.Azimuth.Zone, Fault: fleet.Fault{Kind: fleet.Restore}})
	}
	return sc, nil
}
