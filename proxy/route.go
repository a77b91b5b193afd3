package proxy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Route sends requests matching Host and PathPrefix to a pool. An empty Host
// matches any host; "*.example.com" matches any name under example.com (at
// any depth, as nginx does) but not example.com itself. An empty PathPrefix
// matches every path. A route with neither is the listener's default.
type Route struct {
	Host       string
	PathPrefix string
	Pool       string
	// Name labels the route's metrics (configs.Route.RouteName).
	Name string
	// StripPrefix and ReplacePrefix rewrite PathPrefix in the path the
	// backend gets; HostRewrite replaces its Host ("" keeps it).
	StripPrefix   bool
	ReplacePrefix string
	HostRewrite   string
	// RequestHeaders and ResponseHeaders change the request on its way to
	// the backend and the backend's response on its way back.
	RequestHeaders, ResponseHeaders HeaderRules
	// RateLimit, when set, answers 429 past it.
	RateLimit *RateLimit
}

// router is one listener's compiled routes. Matching allocates nothing:
// exact hosts by map, then wildcard suffixes longest first, then host-less
// routes; within each, the longest path prefix wins.
type router struct {
	exact    map[string][]compiled
	wildcard []compiled // sorted by suffix length, longest first
	anyHost  []compiled
}

type compiled struct {
	suffix string // for wildcards: ".example.com"
	prefix string
	pool   *Pool
	rules  *routeRules // nil for a route that only chooses its pool
}

// newRouter compiles a listener's routes; limiter returns the rate
// limiter of a route that has one (kept across generations by the
// server).
func newRouter(routes []Route, pools map[string]*Pool, limiter func(Route) (*limiter, prometheus.Counter)) (*router, error) {
	r := &router{exact: map[string][]compiled{}}
	for i, rt := range routes {
		p, ok := pools[rt.Pool]
		if !ok {
			return nil, fmt.Errorf("route %d: unknown pool %q", i, rt.Pool)
		}
		host := strings.ToLower(rt.Host)
		c := compiled{prefix: rt.PathPrefix, pool: p, rules: compileRules(rt, limiter)}
		switch {
		case host == "":
			r.anyHost = append(r.anyHost, c)
		case strings.HasPrefix(host, "*."):
			c.suffix = host[1:]
			r.wildcard = append(r.wildcard, c)
		default:
			r.exact[host] = append(r.exact[host], c)
		}
	}
	byPrefix := func(a, b compiled) int { return cmp.Compare(len(b.prefix), len(a.prefix)) }
	for h := range r.exact {
		slices.SortStableFunc(r.exact[h], byPrefix)
	}
	slices.SortStableFunc(r.anyHost, byPrefix)
	slices.SortStableFunc(r.wildcard, func(a, b compiled) int {
		if c := cmp.Compare(len(b.suffix), len(a.suffix)); c != 0 {
			return c
		}
		return byPrefix(a, b)
	})
	return r, nil
}

// match returns the route for a request's Host header and path, or nil.
func (r *router) match(hostport, path string) *compiled {
	host := strings.ToLower(stripPort(hostport))
	if c := longest(r.exact[host], path); c != nil {
		return c
	}
	for i := range r.wildcard {
		c := &r.wildcard[i]
		if len(host) > len(c.suffix) && strings.HasSuffix(host, c.suffix) && strings.HasPrefix(path, c.prefix) {
			return c
		}
	}
	return longest(r.anyHost, path)
}

func longest(cs []compiled, path string) *compiled {
	for i := range cs {
		if strings.HasPrefix(path, cs[i].prefix) {
			return &cs[i]
		}
	}
	return nil
}

// compileRules returns a route's rules, nil when it has none.
func compileRules(rt Route, limit func(Route) (*limiter, prometheus.Counter)) *routeRules {
	rr := &routeRules{
		name: rt.Name, prefix: rt.PathPrefix, strip: rt.StripPrefix, replace: rt.ReplacePrefix, host: rt.HostRewrite,
		req: compileHeaders(rt.RequestHeaders), resp: compileHeaders(rt.ResponseHeaders),
	}
	if rt.RateLimit != nil && limit != nil {
		rr.limit, rr.limited = limit(rt)
	}
	if !rr.strip && rr.replace == "" && rr.host == "" && rr.req.empty() && rr.resp.empty() && rr.limit == nil {
		return nil
	}
	return rr
}

// stripPort removes a trailing :port, leaving IPv6 literals intact, and a
// trailing dot of a fully qualified name.
func stripPort(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}
