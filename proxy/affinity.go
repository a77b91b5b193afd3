package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// A pool may send a request somewhere because of what it carries: a hash
// key (balance hash) and a sticky cookie naming the backend that served
// the client before (sticky). The balancer never reads requests; this file
// turns a request into its balancer.Key, and the backend that answered
// into the sticky cookie of the response.

// keyFor makes the race's key from the outbound request, if the pool asks
// for one; it reports whether it did. The key lives in the race, so
// retries and hedges bring the same one.
func (r *race) keyFor(p *Pool, out *http.Request) bool {
	a := p.Balancer.Affinity()
	if !a.Keyed() {
		return false
	}
	r.affinity, r.keyed = a, true
	r.key = keyOf(a, out)
	return true
}

// keyArg is the race's key as Pick takes it: nil when the pool asks for
// none.
func (r *race) keyArg() *balancer.Key {
	if !r.keyed {
		return nil
	}
	return &r.key
}

// keyOf reads the request's hash key and sticky pin. A missing or
// empty key leaves HasHash false (the pick is least-conn's); a sticky
// cookie that is not a pin this proxy could have set leaves Pin 0.
// The client address is the connection's: X-Forwarded-For is the
// client's to write, so it could pick its own backend.
func keyOf(a *balancer.Affinity, req *http.Request) balancer.Key {
	var k balancer.Key
	var v string
	switch a.HashFrom {
	case balancer.HashHeader:
		v = req.Header.Get(a.HashName)
	case balancer.HashCookie:
		v = cookieValue(req.Header, a.HashName)
	case balancer.HashClientAddress:
		v = clientIP(req.RemoteAddr)
	}
	if v != "" {
		k.Hash, k.HasHash = balancer.HashKey(v), true
	}
	if a.StickyCookie != "" {
		k.Pin = parsePin(cookieValue(req.Header, a.StickyCookie))
	}
	return k
}

// stick adds the sticky cookie to the winning response when its backend
// is not the one the request was pinned to (it had no cookie, a stale
// one, or its backend could not take it): the client moves once, and
// stays.
func (r *race) stick(won *attempt) {
	a := r.affinity
	if !r.keyed || a.StickyCookie == "" {
		return
	}
	b := won.lease.Backend()
	if b.Pin() == r.key.Pin {
		return
	}
	if won.resp.Header == nil {
		won.resp.Header = http.Header{}
	}
	won.resp.Header.Add("Set-Cookie", stickyCookie(a.StickyCookie, b.Pin(), a.StickyTTL, r.out.TLS != nil))
}

// stickyCookie is the Set-Cookie value naming the backend by its pin:
// for the whole site, out of scripts' reach, Secure when the client came
// over TLS, and a session cookie unless ttl is set.
func stickyCookie(name string, pin uint64, ttl time.Duration, secure bool) string {
	var sb strings.Builder
	sb.Grow(len(name) + 64)
	sb.WriteString(name)
	sb.WriteByte('=')
	sb.WriteString(formatPin(pin))
	sb.WriteString("; Path=/")
	if ttl > 0 {
		sb.WriteString("; Max-Age=")
		sb.WriteString(strconv.FormatInt(max(int64(ttl/time.Second), 1), 10))
	}
	sb.WriteString("; HttpOnly")
	if secure {
		sb.WriteString("; Secure")
	}
	return sb.String()
}

// formatPin writes a pin as the 16 hex digits the cookie carries.
func formatPin(pin uint64) string {
	s := strconv.FormatUint(pin, 16)
	return strings.Repeat("0", 16-len(s)) + s
}

// parsePin reads a cookie's pin; anything but 16 hex digits is none.
func parsePin(v string) uint64 {
	if len(v) != 16 {
		return 0
	}
	pin, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0
	}
	return pin
}

// cookieValue returns the value of the first cookie called name in the
// request's Cookie fields, without parsing the others (RFC 6265 section
// 5.4: "name=value" pairs separated by "; "), quotes removed; "" if none.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			n, v, ok := strings.Cut(part, "=")
			if !ok || n != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}
