package discovery

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azimuthproxy/azimuth/balancer"
)

// These tests drive the loop's logic (back-off, rate limit, keeping the
// last set, recovering a panicking sink) against a scripted querier in a
// synctest bubble, where time is exact. The same behaviours are tested
// against a real agent in consul_test.go.

// step is one scripted answer.
type step struct {
	addrs []string // one passing instance per address, port 80
	index uint64
	err   error
}

// call is one recorded query.
type call struct {
	at        time.Time
	waitIndex uint64
	passing   bool
}

// scripted answers queries from its steps, then blocks like a blocking
// query that never sees a change.
type scripted struct {
	mu    sync.Mutex
	steps []step
	calls []call
	spent chan struct{} // closed when a query finds the script spent
}

func (s *scripted) ServiceMultipleTags(_ string, _ []string, passingOnly bool, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
	s.mu.Lock()
	s.calls = append(s.calls, call{at: time.Now(), waitIndex: q.WaitIndex, passing: passingOnly})
	if len(s.steps) == 0 {
		if s.spent != nil {
			close(s.spent)
			s.spent = nil
		}
		s.mu.Unlock()
		<-q.Context().Done()
		return nil, nil, q.Context().Err()
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	s.mu.Unlock()
	if st.err != nil {
		return nil, nil, st.err
	}
	entries := make([]*api.ServiceEntry, 0, len(st.addrs))
	for _, a := range st.addrs {
		entries = append(entries, entry{svcAddr: a, port: 80, svcMeta: map[string]string{"az": "z"}}.build())
	}
	return entries, &api.QueryMeta{LastIndex: st.index}, nil
}

func (s *scripted) recorded() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

// runScripted runs a watcher over steps until the script is spent, then
// stops it, and returns what happened. current is the set the pool had
// when the watcher started.
func runScripted(t *testing.T, current []balancer.Spec, steps []step, sink Sink, timing Timing) (*Watcher, []call, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(WatcherConfig{
		Pool: "web", Client: client, Options: PoolOptions{Service: "web", ZoneMeta: "az"},
		Sink: sink, Registerer: reg, Timing: timing,
		Rand: func() float64 { return 0 }, Current: current,
	})
	if err != nil {
		t.Fatal(err)
	}
	spent := make(chan struct{})
	q := &scripted{steps: steps, spent: spent}
	w.health = q
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// Blocking here lets the bubble's clock run through every back-off.
	<-spent
	synctest.Wait()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	return w, q.recorded(), reg
}

func specs(addrs ...string) []balancer.Spec {
	out := make([]balancer.Spec, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, balancer.Spec{Address: a + ":80", Zone: "z", Weight: 1})
	}
	return out
}

func TestWatcherLoop(t *testing.T) {
	boom := errors.New("connection refused")
	timing := Timing{Wait: time.Minute, MinInterval: 50 * time.Millisecond, BackoffBase: 100 * time.Millisecond, BackoffMax: 400 * time.Millisecond}
	tests := []struct {
		name        string
		current     []balancer.Spec // the pool's set as the watcher starts
		steps       []step
		wantUpdates [][]balancer.Spec
		wantSynced  bool
		wantHolding bool
		wantErrors  float64
		// wantGaps are the times between consecutive query starts.
		wantGaps []time.Duration
		// wantIndexes are the WaitIndex of each query.
		wantIndexes []uint64
	}{
		{
			name:        "errors at start-up never reach the sink",
			steps:       []step{{err: boom}, {err: boom}, {err: boom}},
			wantUpdates: nil,
			wantErrors:  3,
			// Back-off with no jitter: 50ms, 100ms, 200ms.
			wantGaps:    []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond},
			wantIndexes: []uint64{0, 0, 0, 0},
		},
		{
			name: "errors later keep the last set and resync without a duplicate",
			steps: []step{
				{addrs: []string{"127.0.1.1", "127.0.2.1"}, index: 10},
				{err: boom}, {err: boom}, {err: boom}, {err: boom}, {err: boom},
				{addrs: []string{"127.0.1.1", "127.0.2.1"}, index: 12},
			},
			wantUpdates: [][]balancer.Spec{specs("127.0.1.1", "127.0.2.1")},
			wantSynced:  true,
			wantErrors:  5,
			// 50ms min interval, then 50, 100, 200, 200 (capped: 400/2) back-off, then min interval.
			wantGaps:    []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 50 * time.Millisecond},
			wantIndexes: []uint64{0, 10, 0, 0, 0, 0, 0, 12},
		},
		{
			name: "an empty first answer is sent: there is nothing to keep",
			steps: []step{
				{addrs: nil, index: 5},
			},
			wantUpdates: [][]balancer.Spec{{}},
			wantSynced:  true,
			wantGaps:    []time.Duration{50 * time.Millisecond},
			wantIndexes: []uint64{0, 5},
		},
		{
			name: "an empty answer after a non-empty one is held, then instances are sent",
			steps: []step{
				{addrs: []string{"127.0.1.1"}, index: 5},
				{addrs: nil, index: 6},
				{addrs: nil, index: 7},
			},
			wantUpdates: [][]balancer.Spec{specs("127.0.1.1")},
			wantSynced:  true,
			wantHolding: true,
			wantGaps:    []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
			wantIndexes: []uint64{0, 5, 6, 7},
		},
		{
			name:    "an empty first answer holds the set the pool had (a reload to a service with no instance)",
			current: specs("127.0.1.1", "127.0.2.1"),
			steps: []step{
				{addrs: nil, index: 5},
			},
			wantUpdates: nil,
			wantSynced:  true,
			wantHolding: true,
			wantGaps:    []time.Duration{50 * time.Millisecond},
			wantIndexes: []uint64{0, 5},
		},
		{
			name:    "a first answer with instances replaces the set the pool had",
			current: specs("127.0.1.1", "127.0.2.1"),
			steps: []step{
				{addrs: []string{"127.0.3.1"}, index: 5},
				{addrs: nil, index: 6},
			},
			wantUpdates: [][]balancer.Spec{specs("127.0.3.1")},
			wantSynced:  true,
			wantHolding: true,
			wantGaps:    []time.Duration{50 * time.Millisecond, 50 * time.Millisecond},
			wantIndexes: []uint64{0, 5, 6},
		},
		{
			name: "instances after a hold are sent",
			steps: []step{
				{addrs: []string{"127.0.1.1"}, index: 5},
				{addrs: nil, index: 6},
				{addrs: []string{"127.0.2.1"}, index: 7},
			},
			wantUpdates: [][]balancer.Spec{specs("127.0.1.1"), specs("127.0.2.1")},
			wantSynced:  true,
			wantGaps:    []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
			wantIndexes: []uint64{0, 5, 6, 7},
		},
		{
			name: "unchanged answers are not sent; a flapping service is rate limited",
			steps: []step{
				{addrs: []string{"127.0.1.1"}, index: 5},
				{addrs: []string{"127.0.1.1"}, index: 6},
				{addrs: []string{"127.0.1.1", "127.0.2.1"}, index: 7},
				{addrs: []string{"127.0.1.1"}, index: 8},
			},
			wantUpdates: [][]balancer.Spec{specs("127.0.1.1"), specs("127.0.1.1", "127.0.2.1"), specs("127.0.1.1")},
			wantSynced:  true,
			wantGaps:    []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
			wantIndexes: []uint64{0, 5, 6, 7, 8},
		},
		{
			name: "an index that goes backwards starts over from zero",
			steps: []step{
				{addrs: []string{"127.0.1.1"}, index: 500},
				{addrs: []string{"127.0.2.1"}, index: 7},
				{addrs: []string{"127.0.2.1"}, index: 0},
			},
			wantUpdates: [][]balancer.Spec{specs("127.0.1.1"), specs("127.0.2.1")},
			wantSynced:  true,
			wantGaps:    []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
			wantIndexes: []uint64{0, 500, 0, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder()
				w, calls, reg := runScripted(t, tt.current, tt.steps, rec, timing)
				got := rec.all()
				if len(got) != len(tt.wantUpdates) {
					t.Fatalf("updates = %v, want %v", got, tt.wantUpdates)
				}
				for i := range got {
					if !equalSpecs(got[i], tt.wantUpdates[i]) {
						t.Errorf("update %d = %v, want %v", i, got[i], tt.wantUpdates[i])
					}
				}
				st := w.State()
				if st.Synced != tt.wantSynced || st.Holding != tt.wantHolding {
					t.Errorf("State() synced %v holding %v, want %v and %v", st.Synced, st.Holding, tt.wantSynced, tt.wantHolding)
				}
				if tt.wantErrors > 0 && !strings.Contains(st.LastError, "connection refused") {
					t.Errorf("State().LastError = %q, want the query error", st.LastError)
				}
				if n := testutil.ToFloat64(w.metrics.errors.WithLabelValues("web")); n != tt.wantErrors {
					t.Errorf("errors_total = %v, want %v", n, tt.wantErrors)
				}
				if n := testutil.ToFloat64(w.metrics.updates.WithLabelValues("web")); int(n) != len(tt.wantUpdates) {
					t.Errorf("updates_total = %v, want %d", n, len(tt.wantUpdates))
				}
				wantSync := 0.0
				if tt.wantSynced {
					wantSync = 1
				}
				if n := testutil.ToFloat64(w.metrics.syncState.WithLabelValues("web")); n != wantSync {
					t.Errorf("sync_state = %v, want %v", n, wantSync)
				}
				if _, err := reg.Gather(); err != nil {
					t.Errorf("gathering metrics: %v", err)
				}
				if len(calls) != len(tt.wantIndexes) {
					t.Fatalf("%d queries, want %d", len(calls), len(tt.wantIndexes))
				}
				for i, c := range calls {
					if c.waitIndex != tt.wantIndexes[i] {
						t.Errorf("query %d waited on index %d, want %d", i, c.waitIndex, tt.wantIndexes[i])
					}
					if !c.passing {
						t.Errorf("query %d did not ask for passing only", i)
					}
					if i > 0 {
						if gap := c.at.Sub(calls[i-1].at); gap != tt.wantGaps[i-1] {
							t.Errorf("gap before query %d = %v, want %v", i, gap, tt.wantGaps[i-1])
						}
					}
				}
			})
		})
	}
}

// panicky is a sink that panics on its first update.
type panicky struct {
	recorder
	panicked bool
}

func (p *panicky) Update(specs []balancer.Spec) {
	if !p.panicked {
		p.panicked = true
		panic("sink exploded")
	}
	p.recorder.Update(specs)
}

func TestWatcherRecoversFromPanickingSink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &panicky{}
		steps := []step{{addrs: []string{"127.0.1.1"}, index: 3}, {addrs: []string{"127.0.1.1"}, index: 4}}
		w, _, _ := runScripted(t, nil, steps, sink, Timing{})
		if got := sink.all(); len(got) != 1 || !equalSpecs(got[0], specs("127.0.1.1")) {
			t.Errorf("updates after a panic = %v, want the set delivered again", got)
		}
		if n := testutil.ToFloat64(w.metrics.errors.WithLabelValues("web")); n != 1 {
			t.Errorf("errors_total = %v, want 1", n)
		}
	})
}

func TestWatcherRunsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, _ := api.NewClient(api.DefaultConfig())
		w, err := NewWatcher(WatcherConfig{Pool: "p", Client: client, Options: PoolOptions{Service: "s"}, Sink: newRecorder()})
		if err != nil {
			t.Fatal(err)
		}
		w.health = &scripted{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		if err := w.Run(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
			t.Errorf("second Run = %v, want already running", err)
		}
		cancel()
		<-done
	})
}

func TestNewWatcherRejectsBadConfig(t *testing.T) {
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	tests := []struct {
		name    string
		cfg     WatcherConfig
		wantErr string
	}{
		{"no client", WatcherConfig{Sink: newRecorder(), Options: PoolOptions{Service: "s"}}, "no client"},
		{"no sink", WatcherConfig{Client: client, Options: PoolOptions{Service: "s"}}, "no sink"},
		{"no service", WatcherConfig{Pool: "p", Client: client, Sink: newRecorder()}, `pool "p": service: must not be empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Registerer = reg
			if _, err := NewWatcher(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewWatcher = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	// Two watchers on one registerer share the series.
	for _, pool := range []string{"a", "b"} {
		if _, err := NewWatcher(WatcherConfig{Pool: pool, Client: client, Sink: newRecorder(), Options: PoolOptions{Service: "s"}, Registerer: reg}); err != nil {
			t.Fatalf("watcher %s on a shared registerer: %v", pool, err)
		}
	}
}

// equalSpecs compares sets, treating nil and empty alike.
func equalSpecs(a, b []balancer.Spec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// countingHandler counts log records by message.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "address" {
			h.counts[r.Message+" "+a.Value.String()]++
		}
		return true
	})
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func TestWatcherLogsMissingZoneOncePerAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &countingHandler{counts: map[string]int{}}
		client, _ := api.NewClient(api.DefaultConfig())
		w, err := NewWatcher(WatcherConfig{
			Pool: "web", Client: client, Options: PoolOptions{Service: "web", ZoneMeta: "zone"},
			Sink: newRecorder(), Logger: slog.New(h),
		})
		if err != nil {
			t.Fatal(err)
		}
		// The scripted instances carry "az", not "zone": none has a zone.
		spent := make(chan struct{})
		w.health = &scripted{spent: spent, steps: []step{
			{addrs: []string{"127.0.1.1", "127.0.2.1"}, index: 1},
			{addrs: []string{"127.0.1.1", "127.0.2.1"}, index: 2},
			{addrs: []string{"127.0.1.1"}, index: 3},
			{addrs: []string{"127.0.1.1", "127.0.2.1"}, index: 4},
		}}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		<-spent
		synctest.Wait()
		cancel()
		<-done
		const msg = `consul instance has no zone; it joins zone ""`
		h.mu.Lock()
		defer h.mu.Unlock()
		if n := h.counts[msg+" 127.0.1.1:80"]; n != 1 {
			t.Errorf("127.0.1.1:80 without a zone logged %d times over four answers, want 1", n)
		}
		// 127.0.2.1 left and came back: it is a new appearance.
		if n := h.counts[msg+" 127.0.2.1:80"]; n != 2 {
			t.Errorf("127.0.2.1:80 logged %d times, want 2 (once per appearance)", n)
		}
	})
}
