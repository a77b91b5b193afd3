package proxy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Rate limiters outlive generations, like retry budgets: a reload that
// keeps a route's limit keeps its buckets, so a reload is no way around
// a limit. A limiter is known by its listener, route name and settings;
// one no published generation uses is dropped, with its metric series,
// when the generation after it is published.

// limiterKey identifies a route's limiter.
func limiterKey(listener string, rt Route) string {
	l := rt.RateLimit
	return fmt.Sprintf("%s\x00%s\x00%g/%d/%s/%d", listener, rt.Name, l.Rate, l.Burst, l.Key, l.MaxKeys)
}

// limiterFor returns the route's limiter, the server's when it has one,
// else a new one that joins the server at Publish, and the route's
// counter of limited requests.
func (s *Server) limiterFor(g *Generation, listener string, rt Route) (*limiter, prometheus.Counter) {
	k := limiterKey(listener, rt)
	s.mu.Lock()
	l := s.limiters[k]
	s.mu.Unlock()
	if l == nil {
		l = newLimiter(*rt.RateLimit)
	}
	g.limiters[k] = l
	var c prometheus.Counter
	if s.metrics != nil {
		c = s.metrics.limited.WithLabelValues(listener, rt.Name)
	}
	return l, c
}

// keepLimiters makes g's limiters the server's, dropping the others and
// the series of routes g does not limit. The caller holds s.mu.
func (s *Server) keepLimiters(g *Generation, names map[[2]string]bool) {
	s.limiters = g.limiters
	if s.metrics == nil {
		return
	}
	for k := range s.limitedSeries {
		if !names[k] {
			s.metrics.limited.DeleteLabelValues(k[0], k[1])
		}
	}
	s.limitedSeries = names
}
