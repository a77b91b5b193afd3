package health

import (
	"log/slog"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsSharedByPools(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("a second registration on the same registry succeeded")
	}
	f := &fixture{reg: reg, m: m}
	var trackers []*Tracker
	for _, name := range []string{"web", "api"} {
		p := balancer.NewPool(name, balancer.Options{})
		p.Update(specs("a", addrs(1, 2)...)) // the same addresses in both pools
		tr := NewTracker(p, slog.New(slog.DiscardHandler), m)
		d, err := NewDetector(tr, passive(1, time.Minute, 50))
		if err != nil {
			t.Fatal(err)
		}
		d.Observe(p.Backends()[0], true)
		trackers = append(trackers, tr)
	}
	for _, pool := range []string{"web", "api"} {
		l := map[string]string{"pool": pool, "backend": addrs(1, 1)[0]}
		if got, _ := f.counter(t, "azimuth_backend_ejections_total", l); got != 1 {
			t.Errorf("pool %s: ejections %v, want 1", pool, got)
		}
	}
	trackers[0].Close()
	if n := f.series(t, "azimuth_backend_ejections_total", map[string]string{"pool": "web"}); n != 0 {
		t.Errorf("closed pool keeps %d ejection series", n)
	}
	if n := f.series(t, "azimuth_backend_health_transitions_total", map[string]string{"pool": "web"}); n != 0 {
		t.Errorf("closed pool keeps %d transition series", n)
	}
	if n := f.series(t, "azimuth_backend_ejections_total", map[string]string{"pool": "api"}); n != 1 {
		t.Errorf("the other pool has %d ejection series, want 1", n)
	}
}

func TestStateSurvivesReload(t *testing.T) {
	f := newFixture(t, balancer.Options{}, specs("a", addrs(1, 3)...))
	d, err := NewDetector(f.t, passive(3, time.Minute, 100))
	if err != nil {
		t.Fatal(err)
	}
	b := f.pool.Backends()[0]
	failN(d, b, 2)
	// A reload keeps the backend (new weight) and adds another.
	next := specs("a", addrs(1, 4)...)
	next[0].Weight = 5
	f.pool.Update(next)
	if f.pool.Backend(b.Address()) != b {
		t.Fatal("the balancer replaced a backend that stayed")
	}
	if info, _ := f.t.Info(b.Address()); info.PassiveFailures != 2 {
		t.Fatalf("failure count after reload %d, want 2", info.PassiveFailures)
	}
	d.Observe(b, true)
	if b.State() != balancer.StateEjected {
		t.Errorf("state %v, want ejected: the third failure spans the reload", b.State())
	}
	if got := len(f.t.Infos()); got != 4 {
		t.Errorf("infos of %d backends, want 4", got)
	}
}

func TestClearActive(t *testing.T) {
	f := newFixture(t, balancer.Options{ActiveChecks: true}, specs("a", addrs(1, 4)...))
	bs := f.pool.Backends()
	bs[0].SetState(balancer.StateDown)
	bs[1].SetState(balancer.StatePending)
	bs[2].SetState(balancer.StateEjected)
	f.t.ClearActive()
	want := []balancer.State{balancer.StateUp, balancer.StateUp, balancer.StateEjected, balancer.StateUp}
	for i, b := range bs {
		if b.State() != want[i] {
			t.Errorf("backend %d: state %v, want %v", i, b.State(), want[i])
		}
	}
	if got := f.logs.count(`"reason":"active checks turned off"`); got != 2 {
		t.Errorf("logged %d changes, want 2", got)
	}
}
