package discovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/prometheus/client_golang/prometheus"
)

// runCachedWatcher runs a watcher with a cache file against agent and
// returns it with a function that stops it and waits for Run to return.
func runCachedWatcher(t *testing.T, agent *consultest.Agent, cacheFile string, sink Sink) (*Watcher, func()) {
	t.Helper()
	client, err := NewClient(Options{Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(WatcherConfig{
		Pool: "api", Client: client, Options: fleetOpts, Sink: sink, CacheFile: cacheFile,
		Registerer: prometheus.NewRegistry(), Timing: testTiming, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}
	return w, stop
}

// A watcher keeps Consul's set on disk; a watcher started later while
// the agent is down serves that set at once, says it comes from the cache,
// and takes Consul's set as soon as the agent answers again.
func TestConsulCacheServesARestartDuringAnOutage(t *testing.T) {
	agent := consultest.Start(t)
	registerFleet(t, agent.Client())
	cache := CacheFile(t.TempDir(), "api")

	first := newRecorder()
	_, stop := runCachedWatcher(t, agent, cache, first)
	waitFor(t, first, 10*time.Second, "the fleet", func(s []balancer.Spec) bool { return len(s) == 6 })
	stop() // the process stops
	c, ok, err := loadCache(cache, "api")
	if err != nil || !ok || !slices.Equal(c.Backends, fleetSpecs) || c.Pool != "api" || c.Saved.IsZero() {
		t.Fatalf("cache after the first run: %+v ok=%v err=%v", c, ok, err)
	}
	if _, ok, _ := loadCache(cache, "web"); ok {
		t.Error("the cache of service api was taken for service web")
	}

	agent.Stop()
	second := newRecorder()
	w, stop := runCachedWatcher(t, agent, cache, second)
	defer stop()
	got := waitFor(t, second, 2*time.Second, "the cached set with the agent down", func(s []balancer.Spec) bool { return len(s) == 6 })
	if !slices.Equal(got, fleetSpecs) {
		t.Errorf("set from the cache = %v, want %v", got, fleetSpecs)
	}
	if st := w.State(); st.Synced || !st.FromCache || !st.CachedAt.Equal(c.Saved) || st.Backends != 6 {
		t.Errorf("State() serving the cache = %+v", st)
	}

	agent.Restart()
	registerFleet(t, agent.Client())
	if err := agent.Client().Agent().ServiceDeregister("api-c2"); err != nil {
		t.Fatal(err)
	}
	got = waitFor(t, second, 10*time.Second, "consul's set once the agent answers", func(s []balancer.Spec) bool { return len(s) == 5 })
	if st := w.State(); !st.Synced || st.FromCache || st.Backends != 5 {
		t.Errorf("State() after the agent answered = %+v", st)
	}
	// The file is written just after the sink gets the set.
	testwait.Until(t, 5*time.Second, "the cache to hold consul's new set", func() bool {
		c, ok, _ := loadCache(cache, "api")
		return ok && slices.Equal(c.Backends, got)
	})
}

// A cache file that is not a cache is an error logged at start; the pool
// starts empty and fills from Consul, and the file is then rewritten.
func TestConsulCacheUnreadable(t *testing.T) {
	agent := consultest.Start(t)
	registerFleet(t, agent.Client())
	cache := filepath.Join(t.TempDir(), "consul-api.json")
	if err := os.WriteFile(cache, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	_, stop := runCachedWatcher(t, agent, cache, rec)
	defer stop()
	waitFor(t, rec, 10*time.Second, "the fleet", func(s []balancer.Spec) bool { return len(s) == 6 })
	testwait.Until(t, 5*time.Second, "the cache to be rewritten", func() bool {
		c, ok, err := loadCache(cache, "api")
		return err == nil && ok && len(c.Backends) == 6
	})
}
