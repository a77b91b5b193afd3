package scenario

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

func TestPercent(t *testing.T) {
	tests := []struct {
		ok, sent int64
		want     string
	}{
		{100, 100, "100.000%"},
		{999999, 1000000, "99.999%"}, // 99.9999% must not round up to a perfect score
		{2, 3, "66.666%"},
		{0, 5, "0.000%"},
		{0, 0, "n/a"},
	}
	for _, tc := range tests {
		if got := percent(tc.ok, tc.sent); got != tc.want {
			t.Errorf("percent(%d, %d) = %s, want %s", tc.ok, tc.sent, got, tc.want)
		}
	}
}

// TestFaultEvents judges two faults from hand-made /status polls and real
// requests to a real fleet: detection, hits after it, the per-try values,
// and what ends each fault.
func TestFaultEvents(t *testing.T) {
	fl, err := fleet.Start(fleet.Options{Zones: []string{"a", "b"}, PerZone: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	// The requests below arrive "now", which is second 1.9 of a load that
	// started 1.9s ago: after zone a's fault was detected (1.4s), before
	// its restore (3s), and away from every window's edge.
	start := time.Now().Add(-1900 * time.Millisecond)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	var polls []statusSample
	for i := 0; i < 80; i++ {
		s := float64(i) * 0.05
		sample := statusSample{at: at(s), backends: map[string]backendSample{}, perTry: &PerTry{Mode: "auto", Seconds: 0.2}}
		if s >= 1.2 && s < 2.5 {
			sample.perTry = &PerTry{Mode: "auto", Seconds: 0.2 + (s-1.2)/10}
		}
		for _, b := range fl.Backends() {
			down := b.Zone == "a" && s >= 1.4 && s < 3.2
			sample.backends[b.Addr] = backendSample{zone: b.Zone, state: map[bool]string{true: "down", false: "up"}[down], available: !down}
		}
		polls = append(polls, sample)
	}
	for _, name := range []string{"a-1", "a-1", "a-2", "b-1", "b-2"} {
		resp, err := http.Get("http://" + fl.Backend(name).Addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	obs := &observations{fleet: fl, start: start, end: at(4), tailEnd: at(3.5), polls: polls}
	applied := []Applied{
		{Event: Event{Zone: "a", Fault: fleet.Fault{Kind: fleet.Blackhole}}, Offset: time.Second},
		{Event: Event{Backend: "b-1", Fault: fleet.Fault{Kind: fleet.Slow, Delay: time.Second}}, Offset: 1500 * time.Millisecond},
		{Event: Event{Zone: "a", Fault: fleet.Fault{Kind: fleet.Restore}}, Offset: 3 * time.Second},
	}
	evs := obs.faultEvents(applied)
	if len(evs) != 2 {
		t.Fatalf("events %+v, want the two faults", evs)
	}
	a, b := evs[0], evs[1]
	if a.Target != "zone a" || a.EndSeconds != 3 || a.EndedBy != "restore" || len(a.Backends) != 2 {
		t.Errorf("zone a event %+v", a)
	}
	if !a.Detected || *a.DetectedAfterMS < 399 || *a.DetectedAfterMS > 401 {
		t.Errorf("zone a detected %v after %v ms, want 400", a.Detected, a.DetectedAfterMS)
	}
	if a.HitsDuring != 3 || a.HitsAfterDetection != 3 {
		t.Errorf("zone a hits %d during, %d after detection; want 3 and 3", a.HitsDuring, a.HitsAfterDetection)
	}
	if a.PerTryMode != "auto" || *a.PerTryAtStartMS != 200 || *a.PerTryMaxMS < 324 || *a.PerTryMaxMS > 326 {
		t.Errorf("zone a per-try %s at start %v, highest %v; want auto, 200 and 325", a.PerTryMode, *a.PerTryAtStartMS, *a.PerTryMaxMS)
	}
	if b.Detected || b.DetectedAfterMS != nil || b.EndedBy != "end of load" || b.EndSeconds != 4 || b.HitsDuring != 1 || b.HitsAfterDetection != 0 {
		t.Errorf("backend b-1 event %+v: want undetected, one hit, ended by the end of the load", b)
	}
	z := obs.zoneShares([]string{"a", "b"}, "a")
	if z.Hits["a"] != 3 || z.Hits["b"] != 2 || z.OwnShare != 0.6 || z.FromSeconds != 1.5 {
		t.Errorf("zone shares %+v, want a 3 of 5 from second 1.5", z)
	}
	changes := obs.statusSummary().Changes
	if len(changes) != 4+2+2 {
		t.Errorf("%d status changes, want 4 first states, zone a going down and coming back", len(changes))
	}
}

func TestReplaces(t *testing.T) {
	fl, err := fleet.Start(fleet.Options{Zones: []string{"a", "b"}, PerZone: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	o := &observations{fleet: fl}
	zone, backend := Event{Zone: "a"}, Event{Backend: "a-1"}
	tests := []struct {
		later, e Event
		want     bool
	}{
		{Event{Zone: "a"}, zone, true},
		{Event{Zone: "b"}, zone, false},
		{Event{Backend: "a-1"}, zone, false}, // one backend's restore leaves the zone's fault on
		{Event{Backend: "a-1"}, backend, true},
		{Event{Zone: "a"}, backend, true},
		{Event{Backend: "a-2"}, backend, false},
	}
	for _, tc := range tests {
		if got := o.replaces(tc.later, tc.e); got != tc.want {
			t.Errorf("replaces(%s, %s) = %v, want %v", tc.later.Target(), tc.e.Target(), got, tc.want)
		}
	}
}

// TestStatusPoller polls a fake /status, with and without per_try, and
// stops with its context.
func TestStatusPoller(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		perTry := ""
		if n.Add(1) > 2 {
			perTry = `"per_try": {"mode": "auto", "seconds": 0.25},`
		}
		fmt.Fprintf(w, `{"zone":"a","pools":[{"name":"other","backends":[]},{"name":"app",%s"backends":[
			{"address":"127.0.1.1:1","zone":"a","state":"down","available":false},
			{"address":"127.0.2.1:1","zone":"b","state":"up"}]}]}`, perTry)
	}))
	defer srv.Close()
	p := newStatusPoller(srv.Listener.Addr().String(), "app")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s, _, _ := p.result(); len(s) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fewer than 4 polls in 5s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline above
	}
	cancel()
	<-done
	samples, errs, last := p.result()
	if errs != 0 {
		t.Errorf("%d failed polls: %s", errs, last)
	}
	first, later := samples[0], samples[3]
	if first.perTry != nil || later.perTry == nil || later.perTry.Seconds != 0.25 || later.perTry.Mode != "auto" {
		t.Errorf("per-try %+v then %+v: want absent, then auto 0.25s", first.perTry, later.perTry)
	}
	if b := first.backends["127.0.1.1:1"]; b.available || b.state != "down" {
		t.Errorf("backend a %+v, want down and unavailable", b)
	}
	if b := first.backends["127.0.2.1:1"]; !b.available {
		t.Errorf("backend b %+v: without an available field, up means available", b)
	}
	for i := 1; i < len(samples); i++ {
		if gap := samples[i].at.Sub(samples[i-1].at); gap < StatusInterval/2 {
			t.Errorf("polls %d and %d only %v apart", i-1, i, gap)
		}
	}
}
