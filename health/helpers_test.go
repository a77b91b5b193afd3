package health

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// step is one scripted answer of a health server.
type step struct {
	status int  // status to answer
	hang   bool // hold the request until the client gives up
}

func ok() step        { return step{status: http.StatusOK} }
func fail() step      { return step{status: http.StatusServiceUnavailable} }
func hang() step      { return step{hang: true} }
func code(c int) step { return step{status: c} }

// scripted is a real HTTP server on a loopback address that answers each
// request with the next step of its script, repeating the last one.
type scripted struct {
	srv  *httptest.Server
	quit chan struct{}

	mu      sync.Mutex
	steps   []step
	hits    int
	hosts   []string
	remotes []string
	protos  []int
}

// newScripted starts a scripted server on ip (127.0.0.1 if empty).
func newScripted(t *testing.T, ip string, steps ...step) *scripted {
	t.Helper()
	if ip == "" {
		ip = "127.0.0.1"
	}
	s := &scripted{quit: make(chan struct{}), steps: steps}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listening on %s: %v", ip, err)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	t.Cleanup(s.Close)
	return s
}

// Close releases hanging requests and stops the server; it is idempotent.
func (s *scripted) Close() {
	s.mu.Lock()
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.mu.Unlock()
	s.srv.Close()
}

func (s *scripted) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := step{status: http.StatusOK}
	if len(s.steps) > 0 {
		st = s.steps[0]
		if len(s.steps) > 1 {
			s.steps = s.steps[1:]
		}
	}
	s.hits++
	s.hosts = append(s.hosts, r.Host)
	s.remotes = append(s.remotes, r.RemoteAddr)
	s.protos = append(s.protos, r.ProtoMajor)
	s.mu.Unlock()
	if st.hang {
		select {
		case <-r.Context().Done():
		case <-s.quit:
		}
		return
	}
	w.WriteHeader(st.status)
}

// set replaces the script.
func (s *scripted) set(steps ...step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = steps
}

func (s *scripted) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func (s *scripted) Addr() string { return s.srv.Listener.Addr().String() }

// logBuffer is a concurrency-safe JSON log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many log lines contain every one of the substrings.
func (l *logBuffer) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.buf.String()) {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// fixture is a pool with its tracker, metrics, registry and log.
type fixture struct {
	pool *balancer.Pool
	t    *Tracker
	m    *Metrics
	reg  *prometheus.Registry
	logs *logBuffer
}

func newFixture(t *testing.T, o balancer.Options, specs []balancer.Spec, popts ...balancer.PoolOption) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewPedanticRegistry(), logs: &logBuffer{}}
	var err error
	if f.m, err = NewMetrics(f.reg); err != nil {
		t.Fatal(err)
	}
	f.pool = balancer.NewPool("web", o, popts...)
	f.pool.Update(specs)
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.t = NewTracker(f.pool, logger, f.m)
	return f
}

func (f *fixture) backend(t *testing.T, addr string) *balancer.Backend {
	t.Helper()
	b := f.pool.Backend(addr)
	if b == nil {
		t.Fatalf("backend %s not in pool", addr)
	}
	return b
}

// counter returns the value of the named counter with exactly these label
// values, and whether such a series exists.
func (f *fixture) counter(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// series counts the series of the named metric carrying these labels.
func (f *fixture) series(t *testing.T, name string, labels map[string]string) int {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				if labelsMatch(m, labels) {
					n++
				}
			}
		}
	}
	return n
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// runOwned runs fn(ctx) in a goroutine and returns a stop function that
// cancels it and waits for it to return.
func runOwned(t *testing.T, fn func(context.Context)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("run loop did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func specs(zone string, addrs ...string) []balancer.Spec {
	out := make([]balancer.Spec, len(addrs))
	for i, a := range addrs {
		out[i] = balancer.Spec{Address: a, Zone: zone}
	}
	return out
}
