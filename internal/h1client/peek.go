package h1client

import (
	"errors"
	"syscall"

	"github.com/azimuthproxy/azimuth/internal/sockio"
)

// closedByPeer reports whether the backend closed the idle connection (or
// sent bytes nobody asked for), without blocking: one recv with MSG_PEEK.
// Backends close idle connections after their own keep-alive timeout
// (Node's is 5 s); net/http's Transport notices through the read loop
// each connection keeps; this client asks here before reuse instead. Bytes
// waiting on a TLS connection may be a record the TLS layer consumes
// (a session ticket), so there only the close counts. Where the platform
// cannot peek it says no; a request that fails on a reused connection
// before any response byte is sent again instead.
func (c *conn) closedByPeer() bool {
	if c.peek == nil {
		p, err := sockio.NewPeeker(c.raw)
		if err != nil {
			return true // the socket is gone
		}
		if p == nil {
			return false
		}
		c.peek = p
	}
	_, err := c.peek.Look(false)
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return false
	case err != nil:
		return true // an error or the backend's FIN
	}
	return c.nc == c.raw // unsolicited bytes on a plain connection
}
