package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http/httputil"
	"net/netip"
)

// maxRequestIDLen bounds a client-supplied X-Request-Id; a longer one is
// replaced rather than passed on.
const maxRequestIDLen = 128

// newRequestID returns 16 random hex characters.
func newRequestID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// trusted reports whether the peer at remoteAddr is a trusted proxy.
func (l *listener) trusted(remoteAddr string) bool {
	if len(l.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// rewrite sets the outbound request's forwarding headers. ReverseProxy has
// already removed hop-by-hop headers (RFC 9110 section 7.6.1, including
// those named in Connection) and every inbound X-Forwarded-* header; they
// come back only from a trusted proxy. The client's Host is kept.
func (x *exchange) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	trusted := x.listener.trusted(in.RemoteAddr)
	if trusted {
		if v := in.Header["X-Forwarded-For"]; len(v) > 0 {
			out.Header["X-Forwarded-For"] = v
		}
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := in.Header[h]; len(v) > 0 {
				out.Header[h] = v
			}
		}
	}
	out.Header.Set("X-Request-Id", x.id)
	if h := x.listener.ClientSubjectHeader; h != "" {
		out.Header.Del(h)
		if f := x.listener.ClientSubject; f != nil {
			if s := f(in); s != "" {
				out.Header.Set(h, s)
			}
		}
	}
	out.URL.Scheme = x.pool.Scheme
	out.Body = x.body.reader()
	if out.Body == nil {
		out.ContentLength = 0
	}
}
