package scenario

import (
	"github.com/azimuthproxy/azimuth/loadtest"
)

// JSONReport is the report's machine-readable form (azload scenario -o
// json). Its field names are a contract that test suites read: add
// fields, never rename or remove one. JSON.md beside this file describes
// each.
type JSONReport struct {
	Scenario string `json:"scenario"`
	// AzimuthPool is the pools section of the config azimuth ran with.
	AzimuthPool  string           `json:"azimuth_pool_config"`
	OwnZone      string           `json:"own_zone"`
	Result       *loadtest.Result `json:"result"`
	Phases       []Phase          `json:"phases"`
	MethodPhases []MethodPhase    `json:"method_phases"`
	FaultFrom    *int             `json:"fault_window_from_s,omitempty"`
	FaultTo      *int             `json:"fault_window_to_s,omitempty"`
	Faults       []JSONFault      `json:"faults"`
	FaultEvents  []FaultEvent     `json:"fault_events"`
	Attempts     Attempts         `json:"extra_attempts"`
	Duplicates   Duplicates       `json:"duplicates"`
	ZoneShares   ZoneShares       `json:"zone_shares_last_2s"`
	Metrics      AzimuthMetrics   `json:"azimuth_metrics"`
	Probes       []ProbeResult    `json:"probes"`
	Status       StatusSummary    `json:"status_polls"`
	// Retries and RetriesOK are azimuth_retries_total by cause, kept for
	// scripts written before azimuth_metrics.
	Retries    map[string]float64 `json:"retries_by_cause"`
	RetriesOK  bool               `json:"retries_available"`
	StopFailed string             `json:"azimuth_stop_error,omitempty"`
}

// JSONFault is one applied fault (restores included) in JSONReport.
type JSONFault struct {
	AtSeconds float64 `json:"at_s"`
	Target    string  `json:"target"`
	Fault     string  `json:"fault"`
	Error     string  `json:"error,omitempty"`
}

// JSON returns the report's machine-readable form.
func (r *Report) JSON() JSONReport {
	j := JSONReport{
		Scenario: r.Scenario.Name, AzimuthPool: PoolSection(r.Config), OwnZone: r.Scenario.Azimuth.Zone,
		Result: r.Result, Phases: r.Phases, MethodPhases: r.MethodPhases, Faults: []JSONFault{},
		FaultEvents: r.FaultEvents, Attempts: r.Attempts, Duplicates: r.Duplicates, ZoneShares: r.ZoneShares,
		Metrics: r.Metrics, Probes: r.Probes, Status: r.Status,
		Retries: r.Retries, RetriesOK: r.RetriesOK,
	}
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
