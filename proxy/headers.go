package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
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
	return l.trustedAddr(ap.Addr())
}

// trustedAddr reports whether ip is a trusted proxy's.
func (l *listener) trustedAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientAddress is the client's IP as rate limits count it: the
// connection's peer, or, when that is a trusted proxy, the nearest
// address in X-Forwarded-For that is not a trusted proxy's (the entries
// before it are the client's to write). An entry that is not an address
// stops the walk at the last one read.
func (l *listener) clientAddress(r *http.Request) string {
	ip := clientIP(r.RemoteAddr)
	if !l.trusted(r.RemoteAddr) {
		return ip
	}
	vals := r.Header["X-Forwarded-For"]
	for i := len(vals) - 1; i >= 0; i-- {
		parts := strings.Split(vals[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return ip
			}
			ip = a.Unmap().String()
			if !l.trustedAddr(a) {
				return ip
			}
		}
	}
	return ip
}

// forwarding reports whether a header name is one a backend may trust as
// set by its proxy: X-Forwarded-* (Port, Prefix, Server... as well as
// For, Host and Proto), X-Real-Ip and Forwarded, compared without
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
