// Package sockio reads and writes TCP sockets with system calls the Go
// scheduler does not see.
//
// A read or write on a non-blocking socket never sleeps in the kernel: it
// moves bytes or says EAGAIN, and the network poller waits for the socket
// as it does for net.Conn. Go's own socket calls still announce each one
// to the scheduler as a call that might block (entersyscall). That costs
// a few hundred nanoseconds per call, and on a proxy that makes four of
// them per request it costs more indirectly: the announcement wakes the
// runtime's monitor thread whenever it sleeps (the process was idle for a
// moment, which a proxy waiting on its peers is thousands of times a
// second), and the monitor then polls every 20 µs and hands the scheduler
// to another thread whenever it finds a call that has run for one of its
// ticks. With one core that is two context switches and a thread handoff
// for no work at all. The calls here go straight to the kernel instead,
// and leave the scheduler's state alone.
//
// Under the race detector the calls go through package syscall, which
// tells the detector that bytes written to a descriptor happen before they
// are read from one; tests see the same synchronisation as with net.Conn.
package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// maxRW is the most one read or write asks for, as internal/poll does.
const maxRW = 1 << 30

// Conn is a TCP connection whose Read and Write bypass the scheduler's
// system-call bookkeeping. Everything else (deadlines, Close, CloseWrite,
// addresses, SyscallConn) is the *net.TCPConn's; reads and writes wait
// for the socket in the same network poller and honour its deadlines, and
// errors read as net.Conn's do.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex // one Read at a time owns rbuf, rn, rerr
	rbuf   []byte
	rn     int
	rerr   syscall.Errno
	readFn func(fd uintptr) bool

	wmu     sync.Mutex // one Write at a time owns wbuf, wn, werr
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// Wrap returns c as a *Conn when it is a *net.TCPConn on a platform this
// package supports, or c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !supported {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c // closed already: its own calls will say so
	}
	sc := &Conn{TCPConn: tc, rc: rc}
	sc.readFn = sc.read
	sc.writeFn = sc.write
	return sc
}

// Read reads as net.Conn's Read does.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.TCPConn.Read(p) // no system call, as net does
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// read is the poller's callback: false means try again once the socket
// is readable.
func (c *Conn) read(fd uintptr) bool {
	for {
		n, errno := sysRead(fd, c.rbuf)
		switch errno {
		case 0:
			c.rn = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = errno
			return true
		}
	}
}

// Write writes all of p unless an error stops it, as net.Conn's Write
// does.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n, werr := c.wn, c.werr
	c.wbuf = nil
	c.wmu.Unlock()
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		chunk := c.wbuf[c.wn:]
		if len(chunk) > maxRW {
			chunk = chunk[:maxRW]
		}
		n, errno := sysWrite(fd, chunk)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			c.werr = os.NewSyscallError("write", errno)
			return true
		case n == 0:
			c.werr = io.ErrUnexpectedEOF
			return true
		}
		c.wn += n
	}
	return true
}

// opError wraps err as net.Conn's calls do.
func (c *Conn) opError(op string, err error) error { return opError(c, op, err) }

// opError wraps err, met by op on c, as net.Conn's calls do. The poller's
// own errors (a closed connection, a deadline) come from syscall.RawConn
// already wrapped, named "raw-read" or "raw-write"; they get the plain
// name.
func opError(c net.Conn, op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Listener accepts connections as *Conn.
type Listener struct {
	*net.TCPListener
}

// Accept waits for the next connection.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// Peeker looks at the bytes waiting on one socket without taking them
// (recv with MSG_PEEK), with nothing allocated per look: the callback the
// poller runs is made once, with the Peeker.
type Peeker struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) bool
	wait  bool
	n     int
	errno syscall.Errno
	buf   [16]byte
}

// NewPeeker returns a Peeker for c's socket. It returns nil and no error
// when c has no socket or the platform has no peek, and the error of a
// socket that cannot be reached any more (a closed connection).
func NewPeeker(c net.Conn) (*Peeker, error) {
	sc, ok := c.(syscall.Conn)
	if !ok || !supported {
		return nil, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	p := &Peeker{rc: rc}
	p.fn = p.peek
	return p, nil
}

// Look returns the first of the bytes waiting on the socket (up to 16),
// leaving them for the next read; io.EOF when the peer has closed and
// nothing waits; the socket's error (a reset). With nothing waiting it
// returns syscall.EAGAIN, or with wait it waits in the network poller
// until something changes, as a read does, under the read deadline. The
// bytes are valid until the next Look. One Look at a time, and none
// during a Read.
func (p *Peeker) Look(wait bool) ([]byte, error) {
	p.wait = wait
	if err := p.rc.Read(p.fn); err != nil {
		return nil, err
	}
	switch {
	case p.errno != 0:
		return nil, p.errno
	case p.n == 0:
		return nil, io.EOF
	}
	return p.buf[:p.n], nil
}

// peek is the poller's callback: false means wait until the socket is
// readable.
func (p *Peeker) peek(fd uintptr) bool {
	for {
		p.n, p.errno = sysPeek(fd, p.buf[:])
		switch {
		case p.errno == syscall.EINTR:
			continue
		case p.errno == syscall.EAGAIN && p.wait:
			return false
		}
		return true
	}
}
