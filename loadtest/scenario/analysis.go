package scenario

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// ZoneTail is how long the tail of the load is whose backend hits make
// the closing zone shares: long enough to hold thousands of requests, short
// enough to start after a healed zone's recovery in the suite's runs.
const ZoneTail = 2 * time.Second

// observations is what the runner saw besides the load's own result: the
// backends' side, azimuth's /status over time, its counters and probes.
type observations struct {
	fleet   *fleet.Fleet
	start   time.Time // second 0 of the load's timeline
	end     time.Time // when the load's last request finished
	tailEnd time.Time // the planned end of the load, for the zone tail
	polls   []statusSample
	pollErr int
	lastErr string
	metrics AzimuthMetrics
	probes  []ProbeResult
	config  string
}

// FaultEvent is one applied fault (not a restore) and what followed.
type FaultEvent struct {
	AtSeconds float64  `json:"at_s"`
	Target    string   `json:"target"`
	Fault     string   `json:"fault"`
	Error     string   `json:"error,omitempty"`
	Backends  []string `json:"backends"`
	// EndSeconds is when the fault ended: the restore (or next fault) on
	// its target, named by EndedBy, or the end of the load.
	EndSeconds float64 `json:"end_s"`
	EndedBy    string  `json:"ended_by"`
	// Detected is true when a /status poll during the fault showed every
	// targeted backend available: false; DetectedAfterMS is the time from
	// the fault to that poll's answer.
	Detected        bool     `json:"detected"`
	DetectedAfterMS *float64 `json:"detected_after_ms"`
	// HitsDuring counts the requests (health checks apart) that reached
	// the targets from the fault to its end; HitsAfterDetection those from
	// detection to the end (0 when not detected).
	HitsDuring         int64 `json:"hits_during"`
	HitsAfterDetection int64 `json:"hits_after_detection"`
	// PerTryMode, PerTryAtStartMS and PerTryMaxMS are the pool's per-try
	// timeout from /status: at the fault's start and the highest seen
	// until its end; null when /status does not report it.
	PerTryMode      string   `json:"per_try_mode,omitempty"`
	PerTryAtStartMS *float64 `json:"per_try_at_start_ms"`
	PerTryMaxMS     *float64 `json:"per_try_max_ms"`
}

// AttemptWindow compares what clients sent with what backends received.
type AttemptWindow struct {
	FromSeconds float64 `json:"from_s"`
	ToSeconds   float64 `json:"to_s"`
	// Sent counts the requests clients sent (load and probes).
	Sent int64 `json:"sent"`
	// BackendHits counts the requests backends received, health checks
	// apart: every attempt, retry and hedge.
	BackendHits int64 `json:"backend_hits"`
	// ExtraAttemptsPerRequest is BackendHits / Sent - 1.
	ExtraAttemptsPerRequest float64 `json:"extra_attempts_per_request"`
}

// Attempts is AttemptWindow over the whole load and over the fault window
// (nil without faults).
type Attempts struct {
	Whole       AttemptWindow  `json:"whole"`
	FaultWindow *AttemptWindow `json:"fault_window"`
}

// Duplicates is how often backends received one request ID more than once.
type Duplicates struct {
	// IDHeader is the header the IDs came in; "" when the load sent none
	// and nothing was counted.
	IDHeader string `json:"id_header"`
	// NonIdempotent counts POST and PATCH IDs received more than once:
	// requests delivered twice. It must be 0.
	NonIdempotent int64 `json:"non_idempotent"`
	// GET counts GET IDs received more than once: retries and hedges,
	// which are legitimate for a safe method.
	GET int64 `json:"get"`
	// ByMethod has every method's distinct IDs, IDs received more than
	// once, and arrivals beyond the first.
	ByMethod map[string]fleet.Delivery `json:"by_method"`
}

// ZoneShares is the share of backend hits per zone over the load's last
// ZoneTail: after a restore the healed zone should be back to its normal
// share, and a healthy own zone takes (nearly) everything.
type ZoneShares struct {
	FromSeconds float64            `json:"from_s"`
	ToSeconds   float64            `json:"to_s"`
	Hits        map[string]int64   `json:"hits"`
	Shares      map[string]float64 `json:"shares"`
	OwnZone     string             `json:"own_zone"`
	OwnShare    float64            `json:"own_share"`
}

// MethodPhase is one method's requests in one phase.
type MethodPhase struct {
	Phase     string `json:"phase"`
	From      int    `json:"from_s"`
	To        int    `json:"to_s"`
	Method    string `json:"method"`
	Sent      int64  `json:"sent"`
	Succeeded int64  `json:"succeeded"` // 2xx responses
	// SuccessRate is Succeeded/Sent (1 when nothing was sent);
	// SuccessPercent is the same with three decimals, truncated, so only
	// a phase without a failure reads "100.000%".
	SuccessRate    float64 `json:"success_rate"`
	SuccessPercent string  `json:"success_percent"`
	P50            int64   `json:"p50_us"`
	P99            int64   `json:"p99_us"`
	Max            int64   `json:"max_us"`
}

// StatusSummary is what the /status polls saw.
type StatusSummary struct {
	Polls     int    `json:"polls"`
	Errors    int    `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	// PerTryReported is true when /status carried pools[].per_try.
	PerTryReported bool `json:"per_try_reported"`
	// Changes lists each backend's state as first seen and every change
	// of its state or availability (at most maxStatusChanges).
	Changes []StatusChange `json:"changes"`
}

// StatusChange is a backend's state from one poll on.
type StatusChange struct {
	AtSeconds float64 `json:"at_s"`
	Address   string  `json:"address"`
	Zone      string  `json:"zone"`
	State     string  `json:"state"`
	Available bool    `json:"available"`
}

const maxStatusChanges = 1000

// methodPhases cuts each method's requests by the report's phases.
func methodPhases(res *loadtest.Result, phases []Phase) []MethodPhase {
	var out []MethodPhase
	for _, ph := range phases {
		for _, m := range slices.Sorted(maps.Keys(res.Methods)) {
			sent, ok, lat := res.MethodWindow(m, ph.From, ph.To)
			mp := MethodPhase{Phase: ph.Name, From: ph.From, To: ph.To, Method: m, Sent: sent, Succeeded: ok,
				SuccessRate: 1, SuccessPercent: percent(ok, sent), P50: lat.P50, P99: lat.P99, Max: lat.Max}
			if sent > 0 {
				mp.SuccessRate = float64(ok) / float64(sent)
			}
			out = append(out, mp)
		}
	}
	return out
}

// percent formats ok/sent with three decimals, truncated: 99.9996% is
// "99.999%", never "100.000%".
func percent(ok, sent int64) string {
	if sent == 0 {
		return "n/a"
	}
	t := ok * 100000 / sent
	return fmt.Sprintf("%d.%03d%%", t/1000, t%1000)
}

// faultEvents follows each applied fault to its end.
func (o *observations) faultEvents(applied []Applied) []FaultEvent {
	out := []FaultEvent{}
	for i, a := range applied {
		if a.Fault.Kind == fleet.Restore {
			continue
		}
		ev := FaultEvent{AtSeconds: a.Offset.Seconds(), Target: a.Target(), Fault: a.Fault.String(), Backends: []string{}}
		if a.Err != nil {
			ev.Error = a.Err.Error()
		}
		targets := o.targets(a.Event)
		for _, b := range targets {
			ev.Backends = append(ev.Backends, b.Addr)
		}
		from, to := o.start.Add(a.Offset), o.end
		ev.EndedBy = "end of load"
		for _, later := range applied[i+1:] {
			if o.replaces(later.Event, a.Event) {
				to, ev.EndedBy = o.start.Add(later.Offset), later.Fault.String()
				break
			}
		}
		ev.EndSeconds = to.Sub(o.start).Seconds()
		ev.HitsDuring = fleet.HitsBetween(targets, from, to)
		if at, ok := o.detected(ev.Backends, from, to); ok {
			ev.Detected = true
			ev.DetectedAfterMS = millis(at.Sub(from))
			ev.HitsAfterDetection = fleet.HitsBetween(targets, at, to)
		}
		if start, highest := o.perTry(from, to); start != nil {
			ev.PerTryMode = highest.Mode
			ev.PerTryAtStartMS = millis(seconds(start.Seconds))
			ev.PerTryMaxMS = millis(seconds(highest.Seconds))
		}
		out = append(out, ev)
	}
	return out
}

func (o *observations) targets(e Event) []*fleet.Backend {
	if e.Backend != "" {
		if b := o.fleet.Backend(e.Backend); b != nil {
			return []*fleet.Backend{b}
		}
		return nil
	}
	return o.fleet.Zone(e.Zone)
}

// replaces reports whether later ends e's fault: a fault replaces the one
// in force on a backend, and restore is such a fault. A zone's event is
// ended by one on the whole zone; a backend's by one on it or its zone.
func (o *observations) replaces(later, e Event) bool {
	if e.Zone != "" {
		return later.Zone == e.Zone
	}
	if later.Backend == e.Backend {
		return true
	}
	b := o.fleet.Backend(e.Backend)
	return later.Zone != "" && b != nil && later.Zone == b.Zone
}

// detected returns the answer time of the first poll in [from, to) that
// showed every address unavailable.
func (o *observations) detected(addrs []string, from, to time.Time) (time.Time, bool) {
	if len(addrs) == 0 {
		return time.Time{}, false
	}
	for _, s := range o.polls {
		if s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		all := true
		for _, a := range addrs {
			if b, ok := s.backends[a]; !ok || b.available {
				all = false
				break
			}
		}
		if all {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// perTry returns the per-try timeout in force at from (the last poll at
// or before it, else the first after) and the highest until to.
func (o *observations) perTry(from, to time.Time) (atStart, highest *PerTry) {
	for _, s := range o.polls {
		if s.perTry == nil || !s.at.Before(to) {
			continue
		}
		if !s.at.After(from) || atStart == nil {
			atStart = s.perTry
		}
		if !s.at.Before(from) && (highest == nil || s.perTry.Seconds > highest.Seconds) {
			highest = s.perTry
		}
	}
	if atStart != nil && (highest == nil || atStart.Seconds > highest.Seconds) {
		highest = atStart
	}
	return atStart, highest
}

// attempts compares clients' requests with backends' over [from, to)
// seconds of the timeline.
func (o *observations) attempts(res *loadtest.Result, from, to int, whole bool) AttemptWindow {
	w := AttemptWindow{FromSeconds: float64(from), ToSeconds: float64(to)}
	winFrom, winTo := o.start.Add(time.Duration(from)*time.Second), o.start.Add(time.Duration(to)*time.Second)
	if whole {
		// Everything the load caused, its stragglers included.
		winFrom, winTo = o.start.Add(-fleet.HitBucket), o.end.Add(fleet.HitBucket)
		w.ToSeconds = o.end.Sub(o.start).Seconds()
		w.Sent = res.Requests + int64(len(o.probes))
	} else {
		w.Sent, _, _ = res.Window(from, to)
		for _, p := range o.probes {
			if p.AtSeconds >= float64(from) && p.AtSeconds < float64(to) {
				w.Sent++
			}
		}
	}
	w.BackendHits = fleet.HitsBetween(o.fleet.Backends(), winFrom, winTo)
	if w.Sent > 0 {
		w.ExtraAttemptsPerRequest = float64(w.BackendHits)/float64(w.Sent) - 1
	}
	return w
}

func (o *observations) duplicates(idHeader string) Duplicates {
	d := Duplicates{IDHeader: idHeader, ByMethod: o.fleet.Deliveries()}
	for m, n := range d.ByMethod {
		switch m {
		case "POST", "PATCH":
			d.NonIdempotent += n.Duplicated
		case "GET":
			d.GET += n.Duplicated
		}
	}
	return d
}

func (o *observations) zoneShares(zones []string, own string) ZoneShares {
	from := o.tailEnd.Add(-ZoneTail)
	z := ZoneShares{FromSeconds: from.Sub(o.start).Seconds(), ToSeconds: o.tailEnd.Sub(o.start).Seconds(),
		Hits: map[string]int64{}, Shares: map[string]float64{}, OwnZone: own}
	var total int64
	for _, zone := range zones {
		n := fleet.HitsBetween(o.fleet.Zone(zone), from, o.tailEnd)
		z.Hits[zone] = n
		total += n
	}
	for _, zone := range zones {
		if total > 0 {
			z.Shares[zone] = float64(z.Hits[zone]) / float64(total)
		}
	}
	z.OwnShare = z.Shares[own]
	return z
}

func (o *observations) statusSummary() StatusSummary {
	s := StatusSummary{Polls: len(o.polls), Errors: o.pollErr, LastError: o.lastErr, Changes: []StatusChange{}}
	last := map[string]backendSample{}
	for _, p := range o.polls {
		s.PerTryReported = s.PerTryReported || p.perTry != nil
		for _, addr := range slices.Sorted(maps.Keys(p.backends)) {
			b := p.backends[addr]
			if prev, seen := last[addr]; seen && prev == b {
				continue
			}
			last[addr] = b
			if len(s.Changes) < maxStatusChanges {
				s.Changes = append(s.Changes, StatusChange{AtSeconds: p.at.Sub(o.start).Seconds(), Address: addr, Zone: b.zone, State: b.state, Available: b.available})
			}
		}
	}
	return s
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// millis is d in milliseconds, rounded to the microsecond, for JSON.
func millis(d time.Duration) *float64 {
	v := float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
	return &v
}
