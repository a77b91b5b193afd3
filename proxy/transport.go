package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/azimuthproxy/azimuth/internal/h1client"
	"github.com/azimuthproxy/azimuth/internal/sockio"
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
	// SendProxyProtocol, 1 or 2, begins every connection to a backend with
	// a PROXY protocol header of that version naming the request's client;
	// 0 sends none. HTTP/1.1 pools only.
	SendProxyProtocol int
}

// Transport sends a pool's attempts. Server.Publish closes the idle
// connections of a transport the new generation no longer uses.
type Transport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// maxResponseHeaderBytes bounds a backend's response head (each 1xx
// head counts on its own).
const maxResponseHeaderBytes = 64 << 10

// expectContinueTimeout is how long a request with Expect: 100-continue
// waits for the backend's 100 before its body is sent anyway.
const expectContinueTimeout = time.Second

// NewTransport returns the transport for a pool. HTTP/1.1 pools (the
// default) get the proxy's own client (internal/h1client): it sends and
// reads on the request's goroutine, where net/http's hands every request
// to two goroutines per connection, the larger part of the proxy's CPU per
// request. HTTP/2 pools (h2, h2c) use net/http's. Either way keep-alive
// connections are pooled per backend, a connection whose attempt was
// cancelled (per-try timeout, client gone) is closed, never reused, and
// proxy settings from the environment are ignored: backends are reached
// directly.
func NewTransport(o TransportOptions) Transport {
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
	if o.Protocol == "" || o.Protocol == "http1" {
		return h1Transport{h1client.New(h1client.Options{
			Dial:                  dialWith(d),
			TLS:                   o.TLS,
			HandshakeTimeout:      o.Connect,
			MaxIdlePerBackend:     o.MaxIdlePerBackend,
			IdleTimeout:           o.IdleTimeout,
			MaxHeadBytes:          maxResponseHeaderBytes,
			ExpectContinueTimeout: expectContinueTimeout,
			ProxyHeader:           proxyHeader(o.SendProxyProtocol),
		})}
	}
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialWith(d),
		TLSClientConfig:        o.TLS,
		TLSHandshakeTimeout:    o.Connect,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    o.MaxIdlePerBackend,
		IdleConnTimeout:        o.IdleTimeout,
		ExpectContinueTimeout:  expectContinueTimeout,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		DisableCompression:     true,
	}
	var p http.Protocols
	switch o.Protocol {
	case "h2c":
		p.SetUnencryptedHTTP2(true)
	case "h2":
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	t.Protocols = &p
	return t
}

// dialWith is d's DialContext with the connection wrapped for sockio's
// reads and writes. Both transports dial backends through it.
func dialWith(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return sockio.Wrap(c), nil
	}
}
