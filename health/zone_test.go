package health

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/azimuthproxy/azimuth/balancer"
)

// TestZoneHealthDrivesSpill marks backends of the local zone down through
// real failing checks and shows the balancer's zone share and spill follow.
func TestZoneHealthDrivesSpill(t *testing.T) {
	var zoneA []*scripted
	var all []balancer.Spec
	for i := range 3 {
		a := newScripted(t, "127.0.1."+string(rune('1'+i)), ok())
		b := newScripted(t, "127.0.2."+string(rune('1'+i)), ok())
		zoneA = append(zoneA, a)
		all = append(all, balancer.Spec{Address: a.Addr(), Zone: "a"}, balancer.Spec{Address: b.Addr(), Zone: "b"})
	}
	o := balancer.Options{LocalZone: "a", SpillBelow: 0.6, PanicBelow: 0.3, ActiveChecks: true}
	f := newFixture(t, o, all, balancer.WithRand(rand.New(rand.NewPCG(1, 2))))
	c, err := NewChecker(f.t, activeOpts(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	checkAll := func() {
		for _, b := range f.pool.Backends() {
			c.checkNow(context.Background(), b)
		}
	}

	cases := []struct {
		name        string
		failingA    int     // zone a backends answering 503
		wantHealthy int     // healthy backends of zone a
		wantSpill   float64 // share of new requests leaving zone a
	}{
		{"all healthy stays local", 0, 3, 0},
		{"one down of three is above spill_below", 1, 2, 0},
		{"two down spills in proportion", 2, 1, 1 - (1.0/3)/0.6},
		{"all down spills everything", 3, 0, 1},
		{"recovered zone takes its traffic back", 0, 3, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i, s := range zoneA {
				if i < tc.failingA {
					s.set(fail())
				} else {
					s.set(ok())
				}
			}
			checkAll()
			st := f.pool.Status()
			var za, zb balancer.ZoneStatus
			for _, z := range st.Zones {
				switch z.Zone {
				case "a":
					za = z
				case "b":
					zb = z
				}
			}
			if za.Total != 3 || za.Healthy != tc.wantHealthy {
				t.Fatalf("zone a healthy %d/%d, want %d/3", za.Healthy, za.Total, tc.wantHealthy)
			}
			if zb.Healthy != 3 || zb.HealthyShare() != 1 {
				t.Fatalf("zone b healthy %d/%d, want all", zb.Healthy, zb.Total)
			}
			if st.Panic {
				t.Fatal("pool in panic with zone b healthy")
			}
			if math.Abs(st.SpillRatio-tc.wantSpill) > 1e-9 {
				t.Fatalf("spill ratio %v, want %v", st.SpillRatio, tc.wantSpill)
			}
			const picks = 2000
			toB := 0
			for range picks {
				lease, err := f.pool.Pick(context.Background(), nil)
				b := lease.Backend()
				if err != nil {
					t.Fatal(err)
				}
				if b.Zone() == "b" {
					toB++
				}
				if b.State() != balancer.StateUp {
					t.Fatalf("picked %s in state %v", b.Address(), b.State())
				}
				lease.Release()
			}
			if got := float64(toB) / picks; math.Abs(got-tc.wantSpill) > 0.05 {
				t.Errorf("%.3f of picks went to zone b, want %.3f", got, tc.wantSpill)
			}
		})
	}
}
