package balancer

import (
	"fmt"
	"slices"
	"testing"
)

// TestUpdateKeepsLiveState: a backend present before and after an update is
// the same Backend, with its counters, health and drain.
func TestUpdateKeepsLiveState(t *testing.T) {
	p := testPool(Options{LocalZone: "a"})
	p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 1), spec(2, 1, 1)})
	b := p.Backend(addr(1, 1))
	holdOn(b, 3)
	p.Backend(addr(1, 2)).SetState(StateEjected)
	p.Backend(addr(2, 1)).SetDrained(true)

	p.Update([]Spec{spec(2, 1, 1), spec(1, 2, 1), spec(1, 1, 5), spec(1, 1, 9)}) // reordered, reweighted, duplicate
	if got := p.Backend(addr(1, 1)); got != b || got.InFlight() != 3 || got.Spec().Weight != 5 {
		t.Errorf("kept backend: same %v, in flight %d, weight %d; want same, 3, 5 (first duplicate)", got == b, got.InFlight(), got.Spec().Weight)
	}
	if st := p.Backend(addr(1, 2)).State(); st != StateEjected {
		t.Errorf("state %v, want ejected", st)
	}
	if !p.Backend(addr(2, 1)).Drained() {
		t.Error("drain lost")
	}
	if n := len(p.Backends()); n != 3 {
		t.Errorf("%d backends, want 3", n)
	}
	if p.Backend("127.0.9.9:1") != nil {
		t.Error("unknown address found")
	}
	checkTally(t, p)
	holdOn(b, -3)
}

// TestUpdateRetiresRemovedBackends: a removed backend takes no new request
// and is retired when its last one ends; re-adding it before that keeps it.
func TestUpdateRetiresRemovedBackends(t *testing.T) {
	p := testPool(Options{LocalZone: "a"})
	p.Update(spread(3, 1))
	busy, idle := p.Backend(addr(1, 1)), p.Backend(addr(1, 2))
	holdOn(busy, 1)
	p.Update([]Spec{spec(1, 3, 1)})
	if !busy.Removed() || !idle.Removed() || busy.Available() {
		t.Fatal("removed backends not marked removed")
	}
	if got := p.Retiring(); !slices.Equal(got, []*Backend{busy}) {
		t.Fatalf("retiring %v, want only the busy one", got)
	}
	byAddr, _ := countPicks(t, p, 50, nil)
	if byAddr[addr(1, 3)] != 50 {
		t.Fatalf("picks went to removed backends: %v", byAddr)
	}
	busy.release()
	if got := p.Retiring(); len(got) != 0 {
		t.Fatalf("retiring %v after the last request ended", got)
	}

	p.Update(spread(3, 1))
	holdOn(p.Backend(addr(1, 1)), 2)
	p.Update([]Spec{spec(1, 3, 1)})
	kept := p.Retiring()[0]
	p.Update(spread(3, 1))
	if got := p.Backend(addr(1, 1)); got != kept || got.InFlight() != 2 || got.Removed() || len(p.Retiring()) != 0 {
		t.Fatalf("re-added backend: same %v, in flight %d, removed %v, retiring %d", got == kept, got.InFlight(), got.Removed(), len(p.Retiring()))
	}
	checkTally(t, p)
	kept.release()
	kept.release()
}

// TestZoneDrain: a drained zone covers backends that join it later, and a
// backend moving zones follows its new zone's drain.
func TestZoneDrain(t *testing.T) {
	p := testPool(Options{LocalZone: "a"})
	p.Update(spread(2, 2))
	if !p.SetZoneDrained("b", true) || p.SetZoneDrained("b", true) || !p.ZoneDrained("b") {
		t.Fatal("SetZoneDrained does not report the change once")
	}
	p.Update(append(spread(2, 2), spec(2, 7, 1), Spec{Address: addr(1, 1), Zone: "b"}))
	for _, b := range p.Backends() {
		if want := b.Zone() == "b"; b.Drained() != want {
			t.Errorf("%s in zone %s: drained %v", b.Address(), b.Zone(), b.Drained())
		}
	}
	checkTally(t, p)
	p.SetZoneDrained("b", false)
	for _, b := range p.Backends() {
		if b.Drained() {
			t.Errorf("%s still drained", b.Address())
		}
	}
	checkTally(t, p)
}

// TestSetStateReportsTransitions: SetState and SetDrained report changes
// once, so callers log and count transitions only.
func TestSetStateReportsTransitions(t *testing.T) {
	p := testPool(Options{})
	p.Update(spread(1, 1))
	b := p.Backends()[0]
	steps := []struct {
		to       State
		wantFrom State
		changed  bool
	}{
		{StateUp, StateUp, false},
		{StateDown, StateUp, true},
		{StateDown, StateDown, false},
		{StateEjected, StateDown, true},
		{StatePending, StateEjected, true},
		{StateUp, StatePending, true},
	}
	for _, s := range steps {
		from, changed := b.SetState(s.to)
		if from != s.wantFrom || changed != s.changed {
			t.Errorf("SetState(%v) = %v, %v; want %v, %v", s.to, from, changed, s.wantFrom, s.changed)
		}
		checkTally(t, p)
	}
	if !b.SetDrained(true) || b.SetDrained(true) || !b.SetDrained(false) || b.SetDrained(false) {
		t.Error("SetDrained does not report the change once")
	}
	if State(9).String() != "unknown" || StateEjected.String() != "ejected" {
		t.Error("State.String")
	}
}

// TestRegistryKeepsPools: a reload asks for its pools by name and gets the
// same pools, with new options, so backends keep their counters.
func TestRegistryKeepsPools(t *testing.T) {
	r := NewRegistry(WithRand(seeded(1)))
	web := r.Pool("web", Options{LocalZone: "a"})
	web.Update(spread(2, 1))
	holdOn(web.Backends()[0], 1)
	api := r.Pool("api", Options{})
	if again := r.Pool("web", Options{LocalZone: "b"}); again != web || web.Options().LocalZone != "b" {
		t.Fatal("second Pool call did not return the configured pool")
	}
	if r.Lookup("web") != web || r.Lookup("nope") != nil {
		t.Fatal("Lookup")
	}
	if got := r.Pools(); !slices.Equal(got, []*Pool{api, web}) {
		t.Fatalf("Pools %v", got)
	}
	if gone := r.Retain([]string{"web"}); !slices.Equal(gone, []*Pool{api}) || r.Lookup("api") != nil {
		t.Fatalf("Retain dropped %v", gone)
	}
	if web.Backends()[0].InFlight() != 1 || web.Name() != "web" {
		t.Fatal("pool state lost")
	}
	web.Backends()[0].release()
}

// TestManyZones: zones beyond maxZones share the last slot; picks, spill
// and tallies keep working.
func TestManyZones(t *testing.T) {
	p := testPool(Options{LocalZone: "z000", SpillBelow: 0.7})
	var specs []Spec
	for z := range maxZones + 6 {
		specs = append(specs, Spec{Address: fmt.Sprintf("127.0.%d.1:8080", z+1), Zone: fmt.Sprintf("z%03d", z)})
	}
	p.Update(specs)
	if n := len(p.current.Load().zones); n != maxZones {
		t.Fatalf("%d zone slots, want %d", n, maxZones)
	}
	p.Backend("127.0.1.1:8080").SetState(StateDown)
	checkTally(t, p)
	_, byZone := countPicks(t, p, 2000, nil)
	if byZone["z000"] != 0 || len(byZone) < maxZones/2 {
		t.Fatalf("picks by zone %v", byZone)
	}
}
