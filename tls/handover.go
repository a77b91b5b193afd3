package edgetls

import (
	"fmt"
	"net"
)

// A listener replaced by a reload hands its socket over rather than
// closing it, and stops without dropping what it has accepted: closing a
// listening socket resets the connections the kernel queued on it but the
// server had not accepted yet. The TLS server and the proxy's plain
// listeners share sockets this way; both run the HTTP/1.1 server of
// internal/h1server, which answers what it accepted while it drains.

// ShareListener returns a listener on ln's socket through a duplicate
// descriptor: closing either closes only its own descriptor, and the
// socket stays open, its queue included, while the other lives.
func ShareListener(ln *net.TCPListener) (*net.TCPListener, error) {
	f, err := ln.File()
	if err != nil {
		return nil, fmt.Errorf("sharing the socket on %s: %w", ln.Addr(), err)
	}
	defer f.Close()
	shared, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("sharing the socket on %s: %w", ln.Addr(), err)
	}
	return shared.(*net.TCPListener), nil
}
