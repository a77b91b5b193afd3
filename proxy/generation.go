package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// ListenerConfig is one listener's request handling for a generation.
type ListenerConfig struct {
	Name   string
	Routes []Route
	// TrustedProxies are the peers whose X-Forwarded-* headers are kept
	// and appended to; from anyone else they are replaced.
	TrustedProxies []netip.Prefix
	// ClientSubjectHeader names the header that carries a verified client
	// certificate's subject to backends; "" sends none. A client's own
	// header of that name is always removed.
	ClientSubjectHeader string
	// ClientSubject returns the verified client subject of a request, or "".
	ClientSubject func(*http.Request) string
	// MaxBody rejects request bodies longer than this with 413; 0 allows any.
	MaxBody int64
}

// Config is everything the request path needs for one generation.
type Config struct {
	Listeners []ListenerConfig
	Pools     []PoolConfig
}

// Generation is one immutable, published config of the request path. It is
// never written after Publish; a reload builds a new one.
type Generation struct {
	listeners map[string]*listener
	pools     map[string]*Pool
	inflight  atomic.Int64 // requests being served by this generation
	// fresh is the state of pools no generation had before this one; it
	// joins the server's at Publish, so a generation built and then
	// dropped (a reload that failed later) leaves nothing behind.
	fresh map[string]poolState
	// limiters are the rate limiters of this generation's routes, by
	// limiterKey; the server keeps them across generations.
	limiters map[string]*limiter
}

type listener struct {
	ListenerConfig
	router *router
	// subjectLower is ClientSubjectHeader in lower case with '-' for '_',
	// to remove the client's own in any spelling (see outbound).
	subjectLower string
}

// Pool returns the generation's pool with the name, or nil.
func (g *Generation) Pool(name string) *Pool { return g.pools[name] }

// PoolNames returns the names of the generation's pools, sorted.
func (g *Generation) PoolNames() []string {
	names := make([]string, 0, len(g.pools))
	for name := range g.pools {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// InFlight returns the requests this generation is serving.
func (g *Generation) InFlight() int64 { return g.inflight.Load() }

// Build makes a generation from c. Retry budgets, learned per-try
// timeouts and metric children of pools that existed before carry over,
// so their counts stay true. It changes nothing the server serves: a
// generation that is never published is simply dropped.
func (s *Server) Build(c Config) (g *Generation, err error) {
	g = &Generation{listeners: map[string]*listener{}, pools: map[string]*Pool{}, fresh: map[string]poolState{}, limiters: map[string]*limiter{}}
	defer func() {
		if err != nil {
			s.Discard(g)
		}
	}()
	for _, pc := range c.Pools {
		if pc.Balancer == nil || pc.Transport == nil {
			return nil, fmt.Errorf("building pool %q: balancer and transport are required", pc.Name)
		}
		if pc.Retry.Attempts < 1 {
			pc.Retry.Attempts = 1
		}
		if pc.Scheme == "" {
			pc.Scheme = "http"
		}
		st, ok := s.poolState(pc.Name)
		if !ok {
			st = poolState{budget: new(Budget), perTry: new(perTryLearner), metrics: s.metrics.pool(pc.Name)}
			g.fresh[pc.Name] = st
		}
		g.pools[pc.Name] = &Pool{PoolConfig: pc, budget: st.budget, perTry: st.perTry, metrics: st.metrics}
	}
	for _, p := range g.pools {
		if p.Backup == "" {
			continue
		}
		if p.backup = g.pools[p.Backup]; p.backup == nil || p.backup == p {
			return nil, fmt.Errorf("building pool %q: backup pool %q is not another pool of the config", p.Name, p.Backup)
		}
	}
	for _, lc := range c.Listeners {
		r, err := newRouter(lc.Routes, g.pools, func(rt Route) (*limiter, prometheus.Counter) {
			return s.limiterFor(g, lc.Name, rt)
		})
		if err != nil {
			return nil, fmt.Errorf("building listener %q: %w", lc.Name, err)
		}
		g.listeners[lc.Name] = &listener{ListenerConfig: lc, router: r, subjectLower: strings.ReplaceAll(strings.ToLower(lc.ClientSubjectHeader), "_", "-")}
	}
	return g, nil
}

// Discard drops a generation that was built and will not be published
// (the reload failed after it was built): the metric series of the pools
// only it had go with it.
func (s *Server) Discard(g *Generation) {
	for name := range g.fresh {
		if _, ok := s.poolState(name); !ok {
			s.metrics.forget(name)
		}
	}
}

// poolState returns what a published pool keeps across generations: its
// retry budget, what it learned of its latency and its metric children.
func (s *Server) poolState(name string) (poolState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.pools[name]
	return st, ok
}

type poolState struct {
	budget  *Budget
	perTry  *perTryLearner
	metrics *poolMetrics
}
