package discovery

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/consultest"
)

// timedSink records when each update arrived.
type timedSink struct {
	ch chan timedUpdate
}

type timedUpdate struct {
	at    time.Time
	specs []balancer.Spec
}

func (s *timedSink) Update(specs []balancer.Spec) {
	s.ch <- timedUpdate{at: time.Now(), specs: specs}
}

// next waits for the first update satisfying ok.
func (s *timedSink) next(tb testing.TB, what string, ok func([]balancer.Spec) bool) timedUpdate {
	tb.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case u := <-s.ch:
			if ok(u.specs) {
				return u
			}
		case <-timeout.C:
			tb.Fatalf("no update with %s within 10s", what)
		}
	}
}

// runBench runs a watcher until the benchmark ends.
func runBench(b *testing.B, agent *consultest.Agent, opts PoolOptions, sink Sink) {
	b.Helper()
	client, err := NewClient(Options{Address: agent.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewWatcher(WatcherConfig{Pool: "bench", Client: client, Options: opts, Sink: sink, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
}

// BenchmarkConsulChangeLatency measures the time from a registration (and
// a deregistration) at the agent to the new set reaching the sink, over
// blocking queries, with the default Timing. The clock starts when the
// call is made, not when it returns: the new set often reaches the sink
// before the agent's answer reaches the caller, so timing from the return
// would give negative latencies; this is the upper bound. Each iteration is
// one register and one deregister; p50 and p99 are over both.
//
// "back-to-back" makes each change as soon as the last one arrived, so it
// pays the watcher's MinInterval (50ms) rate limit every time; "spaced"
// paces changes 200ms apart, the case of a change after a quiet spell.
//
//	go test -run '^$' -bench ConsulChangeLatency -benchtime 100x ./discovery
func BenchmarkConsulChangeLatency(b *testing.B) {
	for _, bc := range []struct {
		name string
		gap  time.Duration
	}{
		{"back-to-back", 0},
		{"spaced", 200 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) { benchChangeLatency(b, bc.gap) })
	}
}

func benchChangeLatency(b *testing.B, gap time.Duration) {
	agent := consultest.Start(b)
	c := agent.Client()
	sink := &timedSink{ch: make(chan timedUpdate, 1024)}
	runBench(b, agent, PoolOptions{Service: "lat", ZoneMeta: "az"}, sink)
	sink.next(b, "the first (empty) set", func([]balancer.Spec) bool { return true })

	// pace holds the load to one change per gap (bounded load, not a wait
	// for an event).
	pace := func() {
		if gap > 0 {
			t := time.NewTimer(gap)
			<-t.C
		}
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("lat-%d", i)
		addr := fmt.Sprintf("127.0.1.%d", 1+i%250)
		port := 10000 + i
		want := fmt.Sprintf("%s:%d", addr, port)
		pace()
		start := time.Now()
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "lat", Address: addr, Port: port, Meta: map[string]string{"az": "us-east-1a"},
		}); err != nil {
			b.Fatal(err)
		}
		u := sink.next(b, want, has(want))
		lat = append(lat, u.at.Sub(start))

		pace()
		start = time.Now()
		if err := c.Agent().ServiceDeregister(id); err != nil {
			b.Fatal(err)
		}
		u = sink.next(b, "no "+want, not(has(want)))
		lat = append(lat, u.at.Sub(start))
	}
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(slices.Min(lat).Microseconds())/1000, "min-ms")
	b.ReportMetric(float64(slices.Max(lat).Microseconds())/1000, "max-ms")
}

// BenchmarkConsulSync500 measures a fresh watcher's first full sync of a
// service with 500 instances over three zones: the time from Run to the
// sink holding all 500, and (with -benchmem) what one sync allocates.
//
//	go test -run '^$' -bench ConsulSync500 -benchmem ./discovery
func BenchmarkConsulSync500(b *testing.B) {
	agent := consultest.Start(b)
	register500(b, agent.Client())
	client, err := NewClient(Options{Address: agent.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	opts := PoolOptions{Service: "bulk", ZoneMeta: "az"}
	b.ResetTimer()
	for b.Loop() {
		rec := newRecorder()
		w, err := NewWatcher(WatcherConfig{Pool: "bulk", Client: client, Options: opts, Sink: rec, Registerer: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		<-rec.notify
		cancel()
		<-done
		if last, _ := rec.last(); len(last) != 500 {
			b.Fatalf("first set has %d backends, want 500", len(last))
		}
	}
}

// register500 registers 500 instances of "bulk" on 50 catalog nodes (10
// each, node metadata zone over three zones).
func register500(tb testing.TB, c *api.Client) {
	tb.Helper()
	zones := []string{"us-east-1a", "us-east-1b", "us-east-1c"}
	for n := range 50 {
		node := fmt.Sprintf("bulk-node-%d", n)
		addr := fmt.Sprintf("127.0.%d.%d", 1+n%3, 1+n)
		for s := range 10 {
			_, err := c.Catalog().Register(&api.CatalogRegistration{
				Node: node, Address: addr, NodeMeta: map[string]string{"az": zones[n%3]},
				Service: &api.AgentService{ID: fmt.Sprintf("bulk-%d", s), Service: "bulk", Port: 20000 + s},
				Check:   &api.AgentCheck{Node: node, CheckID: fmt.Sprintf("bulk-%d-check", s), Name: "probe", Status: api.HealthPassing, ServiceID: fmt.Sprintf("bulk-%d", s)},
			}, nil)
			if err != nil {
				tb.Fatalf("registering bulk-%d on %s: %v", s, node, err)
			}
		}
	}
}

// percentile returns the p-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s)) + 0.5)
	if i < 1 {
		i = 1
	}
	if i > len(s) {
		i = len(s)
	}
	return s[i-1]
}
