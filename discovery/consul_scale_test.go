package discovery

import (
	"slices"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

func TestConsul500Instances(t *testing.T) {
	agent := consultest.Start(t)
	start := time.Now()
	register500(t, agent.Client())
	t.Logf("registered 500 instances in %v", time.Since(start))
	rec := newRecorder()
	start = time.Now()
	w, _ := startWatcher(t, agent, PoolOptions{Service: "bulk", ZoneMeta: "az"}, rec)
	got := waitFor(t, rec, 10*time.Second, "500 instances", func(s []balancer.Spec) bool { return len(s) == 500 })
	t.Logf("first sync of 500 instances took %v", time.Since(start))
	zones := map[string]int{}
	for _, s := range got {
		zones[s.Zone]++
		if s.Weight != 1 {
			t.Errorf("%v has weight %d, want 1", s, s.Weight)
		}
	}
	if zones["us-east-1a"] != 170 || zones["us-east-1b"] != 170 || zones["us-east-1c"] != 160 {
		t.Errorf("instances per zone = %v, want 170/170/160", zones)
	}
	if !slices.IsSortedFunc(got, compareSpecs) {
		t.Error("set is not sorted")
	}
	if st := w.State(); st.Backends != 500 {
		t.Errorf("State().Backends = %d, want 500", st.Backends)
	}
}

// The balancer's pool is a Sink.
var _ Sink = (*balancer.Pool)(nil)

func TestConsulFeedsRealPool(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	registerFleet(t, c)
	pool := balancer.NewPool("api", balancer.Options{LocalZone: "us-east-1a"})
	startWatcher(t, agent, fleetOpts, pool)
	addrs := func() []string {
		var out []string
		for _, b := range pool.Backends() {
			out = append(out, b.Address())
		}
		slices.Sort(out)
		return out
	}
	testwait.Until(t, 5*time.Second, "six backends in the pool", func() bool { return len(pool.Backends()) == 6 })
	for _, want := range fleetSpecs {
		b := pool.Backend(want.Address)
		if b == nil || b.Spec() != want {
			t.Fatalf("pool backend %s = %+v, want %+v", want.Address, b, want)
		}
	}
	kept := pool.Backend("127.0.1.1:8080")

	if err := c.Agent().ServiceDeregister("api-a2"); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "api-a2 out of the pool", func() bool { return pool.Backend("127.0.1.2:8080") == nil })
	if got := pool.Backend("127.0.1.1:8080"); got != kept {
		t.Error("a backend present before and after the update lost its live state")
	}
	if got := addrs(); len(got) != 5 {
		t.Errorf("pool backends = %v, want 5", got)
	}
}
