package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// HeaderRules change a message's header fields (configs.HeaderRules):
// remove, then set, then add. The config's validation keeps hop-by-hop,
// forwarding and framing fields out of them.
type HeaderRules struct {
	Remove []string
	Set    map[string]string
	Add    map[string]string
}

// headerRules are HeaderRules compiled: canonical names, each value a
// slice of its own made once, so applying them allocates only for add.
type headerRules struct {
	remove []string
	set    []field
	add    []field
}

type field struct {
	name  string
	value []string
}

func compileHeaders(h HeaderRules) headerRules {
	var c headerRules
	for _, n := range h.Remove {
		c.remove = append(c.remove, http.CanonicalHeaderKey(n))
	}
	for n, v := range h.Set {
		c.set = append(c.set, field{http.CanonicalHeaderKey(n), []string{v}})
	}
	for n, v := range h.Add {
		c.add = append(c.add, field{http.CanonicalHeaderKey(n), []string{v}})
	}
	return c
}

func (c *headerRules) empty() bool { return len(c.remove)+len(c.set)+len(c.add) == 0 }

// apply changes h. A set value's slice is shared by every request, with
// its capacity its length, so a later append copies it.
func (c *headerRules) apply(h http.Header) {
	for _, n := range c.remove {
		delete(h, n)
	}
	for _, f := range c.set {
		h[f.name] = f.value[:1:1]
	}
	for _, f := range c.add {
		h[f.name] = append(h[f.name], f.value[0])
	}
}

// routeRules are what a route does beyond choosing its pool: the name it
// is counted under, its rewrite, header rules and rate limit. A route
// with none of them has no routeRules.
type routeRules struct {
	name    string
	prefix  string // the route's path_prefix, what strip and replace act on
	strip   bool
	replace string
	host    string
	req     headerRules
	resp    headerRules
	limit   *limiter
	limited prometheus.Counter // nil without a limit
}

// rewrite changes the outbound request's path and Host.
func (rr *routeRules) rewrite(r *http.Request) {
	if rr.host != "" {
		r.Host = rr.host
	}
	if !rr.strip && rr.replace == "" {
		return
	}
	r.URL.Path = rr.swapPrefix(r.URL.Path)
	if r.URL.RawPath != "" {
		// The escaped form keeps its escapes when it still matches the
		// new path; otherwise the path is sent as Go escapes it.
		raw := rr.swapPrefix(r.URL.RawPath)
		if p, err := url.PathUnescape(raw); err == nil && p == r.URL.Path {
			r.URL.RawPath = raw
		} else {
			r.URL.RawPath = ""
		}
	}
}

// swapPrefix replaces the route's prefix at the start of p with the
// replacement ("" when stripping), keeping the path absolute.
func (rr *routeRules) swapPrefix(p string) string {
	rest, ok := strings.CutPrefix(p, rr.prefix)
	if !ok {
		return p
	}
	out := rr.replace + rest
	switch {
	case rr.replace != "" && strings.HasSuffix(rr.replace, "/") && strings.HasPrefix(rest, "/"):
		out = rr.replace + rest[1:]
	case rr.replace != "" && rest != "" && strings.HasSuffix(rr.prefix, "/") && !strings.HasSuffix(rr.replace, "/"):
		// The prefix's own slash went with it: /api/ to /v2 makes
		// /api/users /v2/users.
		out = rr.replace + "/" + rest
	}
	if !strings.HasPrefix(out, "/") {
		out = "/" + out
	}
	return out
}
