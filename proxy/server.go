package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the Server's dependencies.
type Options struct {
	Logger *slog.Logger
	// Metrics, if not nil, receives the request path's series.
	Metrics *Metrics
	// AccessLog, if not nil, gets one line per request.
	AccessLog *AccessLog
}

// Server serves every listener from the current generation. Publishing a
// new generation is atomic: a request runs entirely on the generation it
// started on.
type Server struct {
	logger  *slog.Logger
	metrics *Metrics
	access  *AccessLog
	current atomic.Pointer[Generation]

	mu    sync.Mutex
	pools map[string]poolState
	// limiters are the published generation's rate limiters (limiters.go);
	// limitedSeries the listener and route labels it counts under.
	limiters      map[string]*limiter
	limitedSeries map[[2]string]bool
	wg            sync.WaitGroup // retiring generations
	ctx           context.Context
}

// NewServer returns a Server with no generation; requests get 503 until the
// first Publish. Goroutines it starts to retire old generations stop when
// ctx ends; Wait waits for them.
func NewServer(ctx context.Context, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{logger: o.Logger, metrics: o.Metrics, access: o.AccessLog, pools: map[string]poolState{}, ctx: ctx}
	return s
}

// Publish makes g the current generation and retires the previous one: once
// its last request ends, idle connections of transports g no longer uses
// are closed, and series of pools that left are deleted.
func (s *Server) Publish(g *Generation) {
	s.mu.Lock()
	for name, st := range g.fresh {
		if _, ok := s.pools[name]; !ok {
			s.pools[name] = st
		}
	}
	names := map[[2]string]bool{}
	for _, l := range g.listeners {
		for _, rt := range l.Routes {
			if rt.RateLimit != nil {
				names[[2]string{l.Name, rt.Name}] = true
			}
		}
	}
	s.keepLimiters(g, names)
	s.mu.Unlock()
	old := s.current.Swap(g)
	if old == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.retire(old, g)
	}()
}

// Current returns the published generation, or nil.
func (s *Server) Current() *Generation { return s.current.Load() }

// Wait blocks until retiring generations are done (or ctx ended).
func (s *Server) Wait() { s.wg.Wait() }

func (s *Server) retire(old, next *Generation) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for old.inflight.Load() > 0 {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
	inUse := map[http.RoundTripper]bool{}
	for _, p := range next.pools {
		inUse[p.Transport] = true
	}
	for name, p := range old.pools {
		if !inUse[p.Transport] {
			if c, ok := p.Transport.(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
		}
		if next.pools[name] == nil {
			s.mu.Lock()
			delete(s.pools, name)
			s.mu.Unlock()
			s.metrics.forget(name)
		}
	}
}

// Handler returns the http.Handler of the named listener.
func (s *Server) Handler(listener string) http.Handler {
	return &listenerHandler{s: s, name: listener}
}
