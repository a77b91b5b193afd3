package proxy

import (
	"errors"
	"syscall"

	"github.com/azimuthproxy/azimuth/internal/sockio"
)

// peekState is what closedByPeer needs, made once per connection so the
// check allocates nothing.
type peekState struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	n   int
	err error
	buf [1]byte
}

// closedByPeer reports whether the backend closed the idle connection (or
// sent bytes nobody asked for), without blocking: one recv with MSG_PEEK.
// Backends close idle connections after their own keep-alive timeout
// (Node's is 5 s); net/http's Transport notices through the read loop
// each connection keeps, the proxy asks here before reuse instead. Bytes
// waiting on a TLS connection may be a record the TLS layer consumes
// (a session ticket), so there only the close counts.
func (bc *backendConn) closedByPeer() bool {
	p := &bc.peek
	if p.fn == nil {
		sc, ok := bc.raw.(syscall.Conn)
		if !ok {
			return false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return true
		}
		p.rc = rc
		p.fn = func(fd uintptr) bool {
			p.n, p.err = sockio.Peek(fd, p.buf[:])
			return true
		}
	}
	if err := p.rc.Read(p.fn); err != nil {
		return true
	}
	switch {
	case errors.Is(p.err, syscall.EAGAIN):
		return false
	case p.err != nil || p.n == 0:
		return true // an error or the backend's FIN
	}
	return bc.conn == bc.raw // unsolicited bytes on a plain connection
}
