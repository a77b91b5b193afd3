package configs

import (
	"fmt"
	"math"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Rewrite changes what the backend sees of a request's target.
type Rewrite struct {
	// StripPrefix removes the route's path_prefix from the path
	// ("/api/users" with path_prefix /api becomes "/users"; "/api" becomes
	// "/").
	StripPrefix bool `yaml:"strip_prefix"`
	// ReplacePrefix puts this in place of the route's path_prefix
	// ("/api/users" with path_prefix /api and replace_prefix /v2 becomes
	// "/v2/users"). Not with strip_prefix.
	ReplacePrefix string `yaml:"replace_prefix"`
	// Host is the Host header the backend gets; "" keeps the client's.
	// X-Forwarded-Host still carries the client's.
	Host string `yaml:"host"`
}

// HeaderRules change a message's header fields, in this order: remove,
// set (replace every value), add (one more value). Hop-by-hop fields,
// the forwarding fields the proxy sets (X-Forwarded-*, Forwarded,
// X-Real-Ip, X-Request-Id), framing (Content-Length, Transfer-Encoding),
// Host and the proxy's own Azimuth-* fields cannot be named: the proxy
// keeps them right whatever the rules say.
type HeaderRules struct {
	Remove []string          `yaml:"remove"`
	Set    map[string]string `yaml:"set"`
	Add    map[string]string `yaml:"add"`
}

// Empty reports whether the rules change nothing.
func (h HeaderRules) Empty() bool { return len(h.Remove)+len(h.Set)+len(h.Add) == 0 }

// RateLimit is a route's token bucket per key: Rate requests a second on
// average, up to Burst at once; a request past it gets 429 with
// Retry-After. Buckets live in the proxy's memory, per proxy.
type RateLimit struct {
	// Rate is the requests a second each key may send on average.
	Rate float64 `yaml:"rate"`
	// Burst is how many a key may send at once after a quiet spell
	// (default: Rate rounded up, at least 1).
	Burst int `yaml:"burst"`
	// Key is what requests are counted by: client_address (default: the
	// client's address, or the nearest untrusted one in X-Forwarded-For
	// from a trusted proxy), route (the route as a whole), or
	// header:NAME (the value of a request header; requests without it
	// share one bucket).
	Key string `yaml:"key"`
	// MaxKeys bounds the buckets kept (default 65536): past it, buckets
	// that have refilled are dropped first, then others at random, so a
	// flood of distinct keys cannot exhaust memory.
	MaxKeys int `yaml:"max_keys"`
}

// Rate-limit keys.
const (
	RateKeyClient = "client_address"
	RateKeyRoute  = "route"
	RateKeyHeader = "header:"
	// DefaultRateMaxKeys is rate_limit.max_keys's default.
	DefaultRateMaxKeys = 65536
)

// RouteName is the route's name: its name, or HOST+PATH_PREFIX.
func (r Route) RouteName() string {
	if r.Name != "" {
		return r.Name
	}
	host, path := r.Host, r.PathPrefix
	if host == "" {
		host = "*"
	}
	if path == "" {
		path = "/"
	}
	return host + path
}

// untouchable reports why a rule may not name a header field, or "".
func untouchable(name string) string {
	switch c := http.CanonicalHeaderKey(name); {
	case c == "Connection" || c == "Keep-Alive" || c == "Te" || c == "Trailer" || c == "Transfer-Encoding" || c == "Upgrade" || strings.HasPrefix(c, "Proxy-"):
		return "a hop-by-hop field"
	case strings.HasPrefix(c, "X-Forwarded-") || c == "Forwarded" || c == "X-Real-Ip" || c == "X-Request-Id":
		return "a forwarding field the proxy sets"
	case c == "Content-Length" || c == "Host":
		return "set by the proxy from the message itself"
	case strings.HasPrefix(c, "Azimuth-"):
		return "the proxy's own field"
	}
	return ""
}

// routeRules validates a route's rewrite, header rules and rate limit.
func (v *validator) routeRules(rp string, r Route) {
	if r.Name != "" && !validName(r.Name) {
		v.add(rp+".name", "%q: use letters, digits, '-', '_' and '.'", r.Name)
	}
	w := r.Rewrite
	if w.StripPrefix && w.ReplacePrefix != "" {
		v.add(rp+".rewrite.replace_prefix", "not with strip_prefix: choose one")
	}
	if (w.StripPrefix || w.ReplacePrefix != "") && r.PathPrefix == "" {
		v.add(rp+".rewrite", "needs the route's path_prefix: it is what is stripped or replaced")
	}
	if w.ReplacePrefix != "" && !strings.HasPrefix(w.ReplacePrefix, "/") {
		v.add(rp+".rewrite.replace_prefix", "%q must start with /", w.ReplacePrefix)
	}
	if w.Host != "" && !httpguts.ValidHostHeader(w.Host) {
		v.add(rp+".rewrite.host", "%q is not a valid Host", w.Host)
	}
	v.headerRules(rp+".request_headers", r.RequestHeaders)
	v.headerRules(rp+".response_headers", r.ResponseHeaders)
	if l := r.RateLimit; l != nil {
		if !(l.Rate > 0) || math.IsInf(l.Rate, 0) {
			v.add(rp+".rate_limit.rate", "%v: want requests a second above 0", l.Rate)
		}
		if l.Burst < 1 {
			v.add(rp+".rate_limit.burst", "%d: want at least 1", l.Burst)
		}
		if l.MaxKeys < 1 {
			v.add(rp+".rate_limit.max_keys", "%d: want at least 1", l.MaxKeys)
		}
		switch name, isHeader := strings.CutPrefix(l.Key, RateKeyHeader); {
		case l.Key == RateKeyClient || l.Key == RateKeyRoute:
		case isHeader && httpguts.ValidHeaderFieldName(name):
		default:
			v.add(rp+".rate_limit.key", "%q: want client_address, route or header:NAME", l.Key)
		}
	}
}

func (v *validator) headerRules(p string, h HeaderRules) {
	seen := map[string]string{} // canonical name -> the path that named it
	check := func(path, name string) {
		if !httpguts.ValidHeaderFieldName(name) {
			v.add(path, "%q is not a header field name", name)
		} else if why := untouchable(name); why != "" {
			v.add(path, "%s is %s; rules cannot change it", name, why)
		}
		// Field names have no case: X-A and x-a in one rule set would
		// apply in no order.
		c := http.CanonicalHeaderKey(name)
		if first, dup := seen[c]; dup && !strings.HasPrefix(path, p+".remove") {
			v.add(path, "%s is named again (as at %s); field names have no case", name, first)
		} else {
			seen[c] = path
		}
	}
	for i, name := range h.Remove {
		check(fmt.Sprintf("%s.remove[%d]", p, i), name)
	}
	for name, val := range h.Set {
		check(p+".set."+name, name)
		if !httpguts.ValidHeaderFieldValue(val) {
			v.add(p+".set."+name, "%q is not a valid field value", val)
		}
	}
	for name, val := range h.Add {
		check(p+".add."+name, name)
		if !httpguts.ValidHeaderFieldValue(val) {
			v.add(p+".add."+name, "%q is not a valid field value", val)
		}
	}
}

// rateLimitDefaults fills a rate limit's absent keys.
func rateLimitDefaults(d defaulter, p string, l *RateLimit) {
	def(d, p+".burst", &l.Burst, max(int(math.Ceil(l.Rate)), 1))
	def(d, p+".key", &l.Key, RateKeyClient)
	def(d, p+".max_keys", &l.MaxKeys, DefaultRateMaxKeys)
}
