package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Latency is a backend's service time: Fixed plus a uniform draw in
// [0, Jitter).
type Latency struct {
	Fixed  time.Duration
	Jitter time.Duration
}

// Backend is one real HTTP server on a loopback address that plays faults
// on demand and counts what it receives.
type Backend struct {
	// Name is "<zone>-<n>", n from 1; Zone is its zone; Addr is host:port.
	Name, Zone, Addr string

	latency Latency
	rngMu   sync.Mutex
	rng     *rand.Rand

	srv   *http.Server
	fault atomic.Pointer[Fault]
	done  chan struct{} // closed by Close

	mu      sync.Mutex
	ln      net.Listener          // nil while refusing
	conns   map[net.Conn]struct{} // open connections, to close on refuse
	gate    chan struct{}         // non-nil while blackholed; closed on restore
	serving sync.WaitGroup

	requests atomic.Int64 // requests other than health checks
	health   atomic.Int64
	hits     *hitTimeline // requests other than health checks, by arrival time
	ids      *deliveries  // the fleet's, when it counts IDs
	idHeader string       // the header ids reads
	countsMu sync.Mutex
	methods  map[string]int64
	keys     map[string]int64
}

type connKey struct{}

// HealthPath is the path of active health checks: requests to it play the
// faults like any other but are counted apart, in HealthChecks, and never
// as hits.
const HealthPath = "/healthz"

// SleepPath makes one request slow: a request to /sleep?d=5s is answered
// after the backend's usual service time plus d (at most MaxSleep), so a
// test can send a legitimately slow request into a fast pool.
const SleepPath = "/sleep"

// MaxSleep bounds the d of SleepPath.
const MaxSleep = time.Minute

// shared is what a fleet's backends share: the epoch of their hit
// timelines and the tally of request IDs.
type shared struct {
	epoch    time.Time
	ids      *deliveries
	idHeader string
}

func newBackend(name, zone, host string, lat Latency, rng *rand.Rand, sh shared) (*Backend, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("listening for backend %s: %w", name, err)
	}
	b := &Backend{
		Name: name, Zone: zone, Addr: ln.Addr().String(),
		latency: lat, rng: rng, done: make(chan struct{}),
		conns: map[net.Conn]struct{}{}, methods: map[string]int64{}, keys: map[string]int64{},
		hits: &hitTimeline{epoch: sh.epoch}, ids: sh.ids, idHeader: http.CanonicalHeaderKey(sh.idHeader),
	}
	b.fault.Store(&Fault{})
	b.srv = &http.Server{
		Handler:           b,
		ReadHeaderTimeout: time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ConnState: b.trackConn,
	}
	b.serve(ln)
	return b, nil
}

// serve runs the server on ln until ln closes; callers hold b.mu or own b.
func (b *Backend) serve(ln net.Listener) {
	b.ln = ln
	gl := &gatedListener{Listener: ln, b: b}
	b.serving.Go(func() { _ = b.srv.Serve(gl) })
}

func (b *Backend) trackConn(c net.Conn, s http.ConnState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch s {
	case http.StateNew:
		b.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(b.conns, c)
	}
}

// Fault returns the fault in force.
func (b *Backend) Fault() Fault { return *b.fault.Load() }

// Apply puts f in force, replacing the previous fault; Restore returns the
// backend to health, reopening its listener if it was refusing.
func (b *Backend) Apply(f Fault) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.done:
		return fmt.Errorf("applying %s to backend %s: backend closed", f, b.Name)
	default:
	}
	prev := b.fault.Load()
	if f.Kind == Restore {
		f = Fault{}
	}
	if prev.Kind == Refuse && f.Kind != Refuse {
		ln, err := net.Listen("tcp", b.Addr)
		if err != nil {
			return fmt.Errorf("reopening backend %s on %s: %w", b.Name, b.Addr, err)
		}
		b.serve(ln)
	}
	if f.Kind == Blackhole && b.gate == nil {
		b.gate = make(chan struct{})
	}
	if f.Kind != Blackhole && b.gate != nil {
		close(b.gate)
		b.gate = nil
	}
	b.fault.Store(&f)
	if f.Kind == Refuse && prev.Kind != Refuse {
		err := b.ln.Close()
		b.ln = nil
		for c := range b.conns {
			_ = c.Close()
		}
		if err != nil {
			return fmt.Errorf("closing listener of backend %s: %w", b.Name, err)
		}
	}
	return nil
}

// waitOpen blocks while the backend is blackholed, until restore, Close,
// or ctx ends; it reports whether the backend is open.
func (b *Backend) waitOpen(ctx context.Context) bool {
	for {
		b.mu.Lock()
		gate := b.gate
		b.mu.Unlock()
		if gate == nil {
			return true
		}
		select {
		case <-gate:
		case <-b.done:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// ServeHTTP answers as the fault in force dictates. /healthz plays the
// faults too, as a real sick server's would, but is counted apart.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	gc, _ := r.Context().Value(connKey{}).(*gatedConn)
	at, counted := time.Now(), false
	if gc != nil {
		at, counted = gc.request()
		defer gc.served()
	}
	if !b.waitOpen(r.Context()) {
		return
	}
	if !counted {
		b.count(r, at)
	}
	_, _ = io.Copy(io.Discard, r.Body)
	f := b.fault.Load()
	if f.Kind == ResetBeforeHeaders {
		resetConn(gc)
		return
	}
	delay := b.latency.Fixed
	if b.latency.Jitter > 0 {
		b.rngMu.Lock()
		delay += time.Duration(b.rng.Int64N(int64(b.latency.Jitter)))
		b.rngMu.Unlock()
	}
	if f.Kind == Slow {
		delay += f.Delay
	}
	if r.URL.Path == SleepPath {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > MaxSleep {
			http.Error(w, fmt.Sprintf("%s: want ?d=<duration up to %v>", SleepPath, MaxSleep), http.StatusBadRequest)
			return
		}
		delay += d
	}
	if delay > 0 && !b.sleep(r.Context(), delay) {
		return
	}
	h := w.Header()
	h.Set("X-Backend", b.Name)
	h.Set("X-Backend-Zone", b.Zone)
	switch f.Kind {
	case Status:
		w.WriteHeader(f.Status)
		_, _ = fmt.Fprintf(w, "%s: status %d\n", b.Name, f.Status)
	case Reset:
		b.reset(w, r)
	default:
		_, _ = io.WriteString(w, "ok "+b.Name+"\n")
	}
}

// reset sends headers promising 4 KiB and 1 KiB of it, then resets the
// connection so the client sees the failure mid-body.
func (b *Backend) reset(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(4096))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(make([]byte, 1024))
	_ = http.NewResponseController(w).Flush()
	gc, _ := r.Context().Value(connKey{}).(*gatedConn)
	resetConn(gc)
}

// resetConn closes c with an RST (SO_LINGER 0) rather than a FIN, so the
// peer sees "connection reset", not a clean end.
func resetConn(c *gatedConn) {
	if c == nil {
		return
	}
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Conn.Close()
}

func (b *Backend) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-b.done:
		return false
	}
}

// count tallies one request that arrived at at: a health check, or a hit
// with its method, its ID and its keys.
func (b *Backend) count(r *http.Request, at time.Time) {
	if r.URL.Path == HealthPath {
		b.health.Add(1)
		return
	}
	b.requests.Add(1)
	b.hits.add(at)
	if b.ids != nil && b.idHeader != "" {
		if v := r.Header[b.idHeader]; len(v) > 0 && v[0] != "" {
			b.ids.record(r.Method, v[0])
		}
	}
	b.countsMu.Lock()
	defer b.countsMu.Unlock()
	b.methods[r.Method]++
	for _, k := range []string{"X-Request-Id", "Idempotency-Key"} {
		if v := r.Header.Get(k); v != "" {
			b.keys[v]++
		}
	}
}

// Requests is the number of requests received, health checks excepted.
func (b *Backend) Requests() int64 { return b.requests.Load() }

// HealthChecks is the number of /healthz requests received.
func (b *Backend) HealthChecks() int64 { return b.health.Load() }

// HitsBetween is the number of requests, health checks excepted, that
// arrived in [from, to), to within HitBucket at each end. A request's
// arrival is when its first bytes were read, so a request held by a
// blackhole counts when it came, not when the fault let it through.
func (b *Backend) HitsBetween(from, to time.Time) int64 { return b.hits.between(from, to) }

// Methods returns the requests received per method.
func (b *Backend) Methods() map[string]int64 {
	b.countsMu.Lock()
	defer b.countsMu.Unlock()
	out := make(map[string]int64, len(b.methods))
	for k, v := range b.methods {
		out[k] = v
	}
	return out
}

// KeyCount returns how many requests carried key as their X-Request-Id or
// Idempotency-Key, so a test can prove a request was delivered once.
func (b *Backend) KeyCount(key string) int64 {
	b.countsMu.Lock()
	defer b.countsMu.Unlock()
	return b.keys[key]
}

// Keys returns how many requests carried each X-Request-Id or
// Idempotency-Key value.
func (b *Backend) Keys() map[string]int64 {
	b.countsMu.Lock()
	defer b.countsMu.Unlock()
	out := make(map[string]int64, len(b.keys))
	for k, v := range b.keys {
		out[k] = v
	}
	return out
}

// Close stops the backend: its listener, its connections, and every
// request held by a fault.
func (b *Backend) Close() error {
	b.mu.Lock()
	select {
	case <-b.done:
		b.mu.Unlock()
		return nil
	default:
	}
	close(b.done)
	b.mu.Unlock()
	err := b.srv.Close()
	b.serving.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
