package main

import (
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// Faults of the backends themselves, in the proxy's own zone, under the
// client loop: the other two zones stay healthy, so no idempotent request
// may fail.
func TestChaosBackendFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   fleet.Fault
		backend string // one backend, or "" for all of zone-a
		perTry  time.Duration
		// aborts: a reset mid-body reaches the client as a broken body.
		aborts bool
	}{
		{name: "zone hung", fault: fleet.Fault{Kind: fleet.Blackhole}, perTry: 250 * time.Millisecond},
		{name: "zone refusing", fault: fleet.Fault{Kind: fleet.Refuse}, perTry: 250 * time.Millisecond},
		{name: "zone slow", fault: fleet.Fault{Kind: fleet.Slow, Delay: time.Second}, perTry: 250 * time.Millisecond},
		{name: "backend reset mid-response", fault: fleet.Fault{Kind: fleet.Reset}, backend: "zone-a-1", perTry: time.Second, aborts: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := chaosStartFleet(t)
			rig := chaosNewRig(t)
			rig.start(t, chaosSetup{backends: chaosTargets(f.Backends()), perTry: tt.perTry}, 6)
			apply := func(t *testing.T, fault fleet.Fault) {
				t.Helper()
				var err error
				if tt.backend != "" {
					err = f.ApplyBackend(tt.backend, fault)
				} else {
					err = f.ApplyZone("zone-a", fault)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			play := chaosPlay{
				rig: rig, fleet: f, clients: []*http.Client{chaosPlainClient(t)},
				fault: func(t *testing.T) { apply(t, tt.fault) },
				heal: func(t *testing.T) {
					apply(t, fleet.Fault{Kind: fleet.Restore})
					rig.waitUp(t, 6)
				},
			}
			if tt.aborts {
				play.expect.abortFrom = map[string]bool{tt.backend: true}
			}
			tally := play.run(t)
			// The fault must have met the traffic, or the test shows nothing.
			if tt.aborts {
				if n := tally.aborted[chaosGET] + tally.aborted[chaosKeyed] + tally.aborted[chaosPOST]; n == 0 {
					t.Error("no response broke off: the reset never reached a client")
				}
			} else if moved := tally.byZone["zone-b"] + tally.byZone["zone-c"]; moved == 0 {
				t.Error("no answer came from zone-b or zone-c: the fault never moved traffic")
			}
		})
	}
}

// chaosFlapper serves a fleet backend on an address of its own and, while
// flapping, answers its health checks two passes, two failures, and so on;
// every other request is served by the backend as usual.
type chaosFlapper struct {
	addr     string
	flapping atomic.Bool
	checks   atomic.Int64
}

func chaosStartFlapper(t *testing.T, ip string, b *fleet.Backend) *chaosFlapper {
	t.Helper()
	fl := &chaosFlapper{}
	fl.addr = obsBackend(t, ip, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && fl.flapping.Load() && (fl.checks.Add(1)-1)/2%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b.ServeHTTP(w, r)
	})).addr
	return fl
}

// Health checks of three backends (both of the local zone, one of
// zone-b) flap while the backends serve well: the proxy marks them down
// and up again and again, and no request of any kind fails.
func TestChaosFlappingHealthChecks(t *testing.T) {
	f := chaosStartFleet(t)
	var targets []chaosTarget
	var flappers []*chaosFlapper
	for _, b := range f.Backends() {
		if b.Name != "zone-a-1" && b.Name != "zone-a-2" && b.Name != "zone-b-1" {
			targets = append(targets, chaosTarget{addr: b.Addr, zone: b.Zone})
			continue
		}
		// Backend n of zone z is 127.0.z.n; its flapper is 127.0.z.(100+n).
		ip := netip.MustParseAddrPort(b.Addr).Addr().As4()
		ip[3] += 100
		fl := chaosStartFlapper(t, netip.AddrFrom4(ip).String(), b)
		flappers = append(flappers, fl)
		targets = append(targets, chaosTarget{addr: fl.addr, zone: b.Zone})
	}
	rig := chaosNewRig(t)
	rig.start(t, chaosSetup{backends: targets, perTry: time.Second}, 6)
	downs := func(t *testing.T, addr string) float64 {
		var n float64
		for _, m := range obsSeries(obsScrape(t, rig.admin, ""), "azimuth_backend_health_transitions_total", map[string]string{"backend": addr, "to": "down"}) {
			n += m.GetCounter().GetValue()
		}
		return n
	}
	play := chaosPlay{
		rig: rig, fleet: f, clients: []*http.Client{chaosPlainClient(t)},
		fault: func(t *testing.T) {
			for _, fl := range flappers {
				fl.flapping.Store(true)
			}
		},
		heal: func(t *testing.T) {
			for _, fl := range flappers {
				fl.flapping.Store(false)
			}
			rig.waitUp(t, 6)
		},
		expect: chaosExpect{everyRequest: true},
	}
	play.run(t)
	for _, fl := range flappers {
		if n := downs(t, fl.addr); n < 2 {
			t.Errorf("backend %s went down %v times while its checks flapped, want at least 2", fl.addr, n)
		} else {
			t.Logf("backend %s went down %v times", fl.addr, n)
		}
	}
}
