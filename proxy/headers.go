package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http/httputil"
	"net/netip"
	"strings"
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
// those named in Connection), Forwarded and X-Forwarded-For, -Host and
// -Proto; rewrite also drops every other forwarding header (see
// forwarding). They come back only from a trusted proxy, and never in a
// spelling with underscores. The client's Host is kept.
func (x *exchange) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	trusted := x.listener.trusted(in.RemoteAddr)
	for name := range out.Header {
		if forwarding(name) && (!trusted || strings.ContainsRune(name, '_')) {
			delete(out.Header, name)
		}
	}
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

// forwarding reports whether a header name is one a backend may trust as
// set by its proxy: X-Forwarded-* (Port, Prefix, Server... which
// ReverseProxy leaves alone), X-Real-Ip and Forwarded, compared without
// case and with '_' as '-', since CGI-style servers (WSGI, PHP) read
// X_Forwarded_For as X-Forwarded-For.
func forwarding(name string) bool {
	return prefixFold(name, "x-forwarded-") || equalFold(name, "x-real-ip") || equalFold(name, "forwarded")
}

func prefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && equalFold(s[:len(prefix)], prefix)
}

// equalFold compares s with lower, an ASCII lower-case name, treating '_'
// in s as '-'.
func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			c = '-'
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
