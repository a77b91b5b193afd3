package proxy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Route sends requests matching Host and PathPrefix to a pool. An empty Host
// matches any host; "*.example.com" matches any name under example.com (at
// any depth, as nginx does) but not example.com itself. An empty PathPrefix
// matches every path. A route with neither is the listener's default.
type Route struct {
	Host       string
	PathPrefix string
	Pool       string
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
}

func newRouter(routes []Route, pools map[string]*Pool) (*router, error) {
	r := &router{exact: map[string][]compiled{}}
	for i, rt := range routes {
		p, ok := pools[rt.Pool]
		if !ok {
			return nil, fmt.Errorf("route %d: unknown pool %q", i, rt.Pool)
		}
		host := strings.ToLower(rt.Host)
		c := compiled{prefix: rt.PathPrefix, pool: p}
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

// match returns the pool for a request's Host header and path, or nil.
func (r *router) match(hostport, path string) *Pool {
	host := strings.ToLower(stripPort(hostport))
	if p := longest(r.exact[host], path); p != nil {
		return p
	}
	for _, c := range r.wildcard {
		if len(host) > len(c.suffix) && strings.HasSuffix(host, c.suffix) && strings.HasPrefix(path, c.prefix) {
			return c.pool
		}
	}
	return longest(r.anyHost, path)
}

func longest(cs []compiled, path string) *Pool {
	for _, c := range cs {
		if strings.HasPrefix(path, c.prefix) {
			return c.pool
		}
	}
	return nil
}

// stripPort removes a trailing :port, leaving IPv6 literals intact, and a
// trailing dot of a fully qualified name.
func stripPort(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}
