package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// These tests run the watcher against a real consul agent
// (internal/consultest); they fail when it is missing: run
// tools/consul/build.sh.

// testTiming keeps back-off short so outage tests resync quickly.
var testTiming = Timing{Wait: 30 * time.Second, MinInterval: 10 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}

// startWatcher runs a watcher for opts against agent until the test ends.
func startWatcher(t testing.TB, agent *consultest.Agent, opts PoolOptions, sink Sink) (*Watcher, *prometheus.Registry) {
	t.Helper()
	client, err := NewClient(Options{Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := NewWatcher(WatcherConfig{
		Pool: "api", Client: client, Options: opts, Sink: sink,
		Registerer: reg, Timing: testTiming, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return w, reg
}

// waitFor polls the recorder until its latest update satisfies ok, and
// fails the test after timeout.
func waitFor(t testing.TB, rec *recorder, timeout time.Duration, what string, ok func([]balancer.Spec) bool) []balancer.Spec {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if last, sent := rec.last(); sent && ok(last) {
			return last
		}
		select {
		case <-deadline.C:
			last, _ := rec.last()
			t.Fatalf("waiting %v for %s; last update %v", timeout, what, last)
		case <-rec.notify:
		case <-tick.C:
		}
	}
}

func has(addr string) func([]balancer.Spec) bool {
	return func(s []balancer.Spec) bool {
		return slices.ContainsFunc(s, func(x balancer.Spec) bool { return x.Address == addr })
	}
}

func not(f func([]balancer.Spec) bool) func([]balancer.Spec) bool {
	return func(s []balancer.Spec) bool { return !f(s) }
}

// fleet registers six instances of "api" over three zones, each zone found
// a different way:
//
//	us-east-1a: service metadata, through the agent, with TTL checks
//	us-east-1b: node metadata, on two catalog nodes, node address only
//	us-east-1c: tags, through the agent, weights from meta and from Consul
func registerFleet(t testing.TB, c *api.Client) {
	t.Helper()
	for i, addr := range []string{"127.0.1.1", "127.0.1.2"} {
		reg := &api.AgentServiceRegistration{
			ID: fmt.Sprintf("api-a%d", i+1), Name: "api", Address: addr, Port: 8080,
			Meta:  map[string]string{"az": "us-east-1a"},
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
		}
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatalf("registering %s: %v", reg.ID, err)
		}
	}
	for i, addr := range []string{"127.0.2.1", "127.0.2.2"} {
		registerCatalog(t, c, fmt.Sprintf("node-b%d", i+1), addr, map[string]string{"az": "us-east-1b"},
			&api.AgentService{ID: fmt.Sprintf("api-b%d", i+1), Service: "api", Port: 8080}, api.HealthPassing)
	}
	regs := []*api.AgentServiceRegistration{
		{ID: "api-c1", Name: "api", Address: "127.0.3.1", Port: 8080, Tags: []string{"v1", "az=us-east-1c"},
			Meta: map[string]string{"weight": "3"}, Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}},
		{ID: "api-c2", Name: "api", Address: "127.0.3.2", Port: 8080, Tags: []string{"az=us-east-1c"},
			Weights: &api.AgentWeights{Passing: 5, Warning: 2}, Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}},
	}
	for _, reg := range regs {
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatalf("registering %s: %v", reg.ID, err)
		}
	}
}

// registerCatalog registers a service on an external node, with one
// service check in the given status.
func registerCatalog(t testing.TB, c *api.Client, node, addr string, meta map[string]string, svc *api.AgentService, status string) {
	t.Helper()
	_, err := c.Catalog().Register(&api.CatalogRegistration{
		Node: node, Address: addr, NodeMeta: meta, Service: svc,
		Check: &api.AgentCheck{Node: node, CheckID: "check-" + svc.ID, Name: "probe", Status: status, ServiceID: svc.ID},
	}, nil)
	if err != nil {
		t.Fatalf("registering %s on %s: %v", svc.ID, node, err)
	}
}

var fleetOpts = PoolOptions{Service: "api", ZoneMeta: "az", ZoneTagPrefix: "az=", WeightMeta: "weight"}

var fleetSpecs = []balancer.Spec{
	{Address: "127.0.1.1:8080", Zone: "us-east-1a", Weight: 1},
	{Address: "127.0.1.2:8080", Zone: "us-east-1a", Weight: 1},
	{Address: "127.0.2.1:8080", Zone: "us-east-1b", Weight: 1},
	{Address: "127.0.2.2:8080", Zone: "us-east-1b", Weight: 1},
	{Address: "127.0.3.1:8080", Zone: "us-east-1c", Weight: 3},
	{Address: "127.0.3.2:8080", Zone: "us-east-1c", Weight: 5},
}

func TestConsulFleet(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	registerFleet(t, c)
	rec := newRecorder()
	w, reg := startWatcher(t, agent, fleetOpts, rec)

	got := waitFor(t, rec, 5*time.Second, "the six instances", func(s []balancer.Spec) bool { return len(s) == 6 })
	if !slices.Equal(got, fleetSpecs) {
		t.Fatalf("first set:\n got %v\nwant %v", got, fleetSpecs)
	}
	if st := w.State(); !st.Synced || st.LastSuccess.IsZero() || st.Backends != 6 || st.Index == 0 {
		t.Errorf("State() = %+v, want synced with 6 backends and an index", st)
	}
	if n := testutil.ToFloat64(w.metrics.syncState.WithLabelValues("api")); n != 1 {
		t.Errorf("sync_state = %v, want 1", n)
	}
	if n, err := testutil.GatherAndCount(reg, "azimuth_consul_last_success_timestamp_seconds"); err != nil || n != 1 {
		t.Errorf("last_success series = %d, %v; want 1", n, err)
	}

	t.Run("deregistered instance leaves the set", func(t *testing.T) {
		if err := c.Agent().ServiceDeregister("api-a2"); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, rec, 5*time.Second, "api-a2 gone", not(has("127.0.1.2:8080")))
		if want := slices.Delete(slices.Clone(fleetSpecs), 1, 2); !slices.Equal(got, want) {
			t.Errorf("set = %v, want %v", got, want)
		}
	})

	t.Run("critical instance leaves the set within a second", func(t *testing.T) {
		start := time.Now()
		if err := c.Agent().FailTTL("service:api-c1", "down"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, rec, time.Second, "api-c1 critical and gone", not(has("127.0.3.1:8080")))
		t.Logf("critical instance left the set %v after FailTTL returned", time.Since(start))
	})

	t.Run("critical catalog check leaves the set", func(t *testing.T) {
		registerCatalog(t, c, "node-b2", "127.0.2.2", map[string]string{"az": "us-east-1b"},
			&api.AgentService{ID: "api-b2", Service: "api", Port: 8080}, api.HealthCritical)
		waitFor(t, rec, 5*time.Second, "api-b2 gone", not(has("127.0.2.2:8080")))
	})

	t.Run("warning instance leaves by default", func(t *testing.T) {
		if err := c.Agent().WarnTTL("service:api-c2", "slow"); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, rec, 5*time.Second, "api-c2 warning and gone", not(has("127.0.3.2:8080")))
		want := []balancer.Spec{fleetSpecs[0], fleetSpecs[2]}
		if !slices.Equal(got, want) {
			t.Errorf("set = %v, want %v", got, want)
		}
	})

	t.Run("warning instance stays with IncludeWarning and its warning weight", func(t *testing.T) {
		opts := fleetOpts
		opts.IncludeWarning = true
		rec2 := newRecorder()
		startWatcher(t, agent, opts, rec2)
		got := waitFor(t, rec2, 5*time.Second, "api-c2 admitted", has("127.0.3.2:8080"))
		want := []balancer.Spec{
			fleetSpecs[0], fleetSpecs[2],
			{Address: "127.0.3.2:8080", Zone: "us-east-1c", Weight: 2},
		}
		if !slices.Equal(got, want) {
			t.Errorf("set = %v, want %v (critical api-c1 and api-b2 still out)", got, want)
		}
	})

	t.Run("an empty set is held and the pool keeps its last set", func(t *testing.T) {
		for _, id := range []string{"api-a1", "api-c1", "api-c2"} {
			if err := c.Agent().ServiceDeregister(id); err != nil {
				t.Fatal(err)
			}
		}
		for _, node := range []string{"node-b1", "node-b2"} {
			if _, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: node}, nil); err != nil {
				t.Fatal(err)
			}
		}
		testwait.Until(t, 5*time.Second, "the watcher holding its last set", func() bool { return w.State().Holding })
		// The deregistrations land one by one, so the sink may see
		// shrinking sets, but never an empty one.
		all := rec.all()
		last := all[len(all)-1]
		if len(last) == 0 {
			t.Fatalf("the sink got an empty set: %v", all)
		}
		if st := w.State(); !st.Synced || st.Backends != len(last) {
			t.Errorf("State() = %+v, want synced, holding %d backends", st, len(last))
		}
		// An instance that comes back is applied at once.
		reg := &api.AgentServiceRegistration{
			ID: "api-a1", Name: "api", Address: "127.0.1.1", Port: 8080,
			Meta:  map[string]string{"az": "us-east-1a"},
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
		}
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, rec, 5*time.Second, "api-a1 back", has("127.0.1.1:8080"))
		if len(got) != 1 {
			t.Errorf("set = %v, want api-a1 alone", got)
		}
		if w.State().Holding {
			t.Error("still holding after an instance came back")
		}
	})

	for i, u := range rec.all() {
		if i > 0 && slices.Equal(u, rec.all()[i-1]) {
			t.Errorf("update %d repeats update %d: %v", i, i-1, u)
		}
	}
}

func TestConsulTagFilter(t *testing.T) {
	agent := consultest.Start(t)
	registerFleet(t, agent.Client())
	rec := newRecorder()
	opts := fleetOpts
	opts.Tags = []string{"v1", "az=us-east-1c"}
	startWatcher(t, agent, opts, rec)
	got := waitFor(t, rec, 5*time.Second, "the tagged instance", func(s []balancer.Spec) bool { return len(s) > 0 })
	if want := fleetSpecs[4:5]; !slices.Equal(got, want) {
		t.Errorf("set with tags %v = %v, want %v", opts.Tags, got, want)
	}
}

func TestConsulUnreachableAtStart(t *testing.T) {
	agent := consultest.Start(t)
	agent.Stop()
	rec := newRecorder()
	w, _ := startWatcher(t, agent, fleetOpts, rec)
	testwait.Until(t, 5*time.Second, "three errors", func() bool {
		return testutil.ToFloat64(w.metrics.errors.WithLabelValues("api")) >= 3
	})
	if n := rec.count(); n != 0 {
		t.Fatalf("sink called %d times with consul down at start", n)
	}
	st := w.State()
	if st.Synced || !st.LastSuccess.IsZero() || st.LastError == "" {
		t.Errorf("State() = %+v, want never synced with an error", st)
	}

	agent.Restart()
	registerFleet(t, agent.Client())
	got := waitFor(t, rec, 5*time.Second, "the fleet once consul is up", func(s []balancer.Spec) bool { return len(s) == 6 })
	if !slices.Equal(got, fleetSpecs) {
		t.Errorf("set = %v, want %v", got, fleetSpecs)
	}
}

func TestConsulOutageKeepsLastSetAndResyncs(t *testing.T) {
	agent := consultest.Start(t)
	registerFleet(t, agent.Client())
	// Push the old agent's index well above where a fresh one starts, so
	// the resync below only works if the watcher drops its old index.
	for i := range 50 {
		if _, err := agent.Client().KV().Put(&api.KVPair{Key: fmt.Sprintf("churn/%d", i), Value: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	w, _ := startWatcher(t, agent, fleetOpts, rec)
	waitFor(t, rec, 5*time.Second, "the fleet", func(s []balancer.Spec) bool { return len(s) == 6 })
	oldIndex := w.State().Index
	updates := rec.count()

	agent.Stop()
	testwait.Until(t, 5*time.Second, "errors counted", func() bool {
		return testutil.ToFloat64(w.metrics.errors.WithLabelValues("api")) >= 2
	})
	st := w.State()
	if st.Synced || st.LastError == "" || st.LastSuccess.IsZero() || st.Backends != 6 {
		t.Errorf("State() during outage = %+v, want not synced, an error, the old success and 6 backends", st)
	}
	if n := testutil.ToFloat64(w.metrics.syncState.WithLabelValues("api")); n != 0 {
		t.Errorf("sync_state during outage = %v, want 0", n)
	}
	if n := rec.count(); n != updates {
		t.Fatalf("sink called %d more times during the outage: %v", n-updates, rec.all()[updates:])
	}

	// A restarted dev agent has lost everything and its index starts low.
	agent.Restart()
	c := agent.Client()
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "api-new", Name: "api", Address: "127.0.1.9", Port: 8080, Meta: map[string]string{"az": "us-east-1a"},
	}); err != nil {
		t.Fatal(err)
	}
	want := []balancer.Spec{{Address: "127.0.1.9:8080", Zone: "us-east-1a", Weight: 1}}
	waitFor(t, rec, 5*time.Second, "the set from the restarted agent", func(s []balancer.Spec) bool { return slices.Equal(s, want) })
	st = w.State()
	if !st.Synced || st.Index >= oldIndex {
		t.Errorf("State() after restart = %+v, want synced on an index below the old %d", st, oldIndex)
	}
	if !strings.Contains(st.LastError, "querying health of service api") {
		t.Errorf("State().LastError = %q, want the outage's error kept", st.LastError)
	}
	// The restarted agent may first answer with no instances at all, before
	// the registration above lands: that empty set is its real answer. Any
	// other set would be one the outage made up.
	for i, u := range rec.all()[updates:] {
		if len(u) != 0 && !slices.Equal(u, want) {
			t.Errorf("update %d after the outage = %v, want only the restarted agent's answers", i, u)
		}
	}
}
