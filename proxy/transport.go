package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// TransportOptions shape the connections to a pool's backends.
type TransportOptions struct {
	// Protocol is "http1" (HTTP/1.1), "h2c" (HTTP/2 without TLS, for gRPC)
	// or "h2" (HTTP/2 over TLS, falling back to HTTP/1.1).
	Protocol string
	// TLS, if not nil, makes connections TLS with these settings.
	TLS *tls.Config
	// Connect bounds the TCP dial and, for TLS, the handshake.
	Connect time.Duration
	// MaxIdlePerBackend keeps this many idle keep-alive connections per
	// backend (default 64).
	MaxIdlePerBackend int
	// IdleTimeout closes keep-alive connections idle this long (default 90s).
	IdleTimeout time.Duration
}

// NewTransport returns the transport for a pool. Keep-alive connections are
// pooled per backend; a connection whose attempt was cancelled (per-try
// timeout, client gone) is closed by net/http, never reused. Proxy settings
// from the environment are ignored: backends are reached directly.
func NewTransport(o TransportOptions) *http.Transport {
	if o.MaxIdlePerBackend <= 0 {
		o.MaxIdlePerBackend = 64
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.Connect <= 0 {
		o.Connect = 5 * time.Second
	}
	d := &net.Dialer{Timeout: o.Connect, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        o.TLS,
		TLSHandshakeTimeout:    o.Connect,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    o.MaxIdlePerBackend,
		IdleConnTimeout:        o.IdleTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
	}
	var p http.Protocols
	switch o.Protocol {
	case "h2c":
		p.SetUnencryptedHTTP2(true)
	case "h2":
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	t.Protocols = &p
	return t
}
