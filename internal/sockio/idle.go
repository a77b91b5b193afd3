package sockio

import (
	"io"
	"net"
	"os"
	"syscall"
)

// IdleReader reads one socket that may wait long for its peer (a
// keep-alive connection between requests) into a buffer it takes only
// once the socket has bytes: it tries a read, and when there is nothing
// to read it gives the buffer back before it waits in the network poller,
// so a thousand idle connections hold no buffers. The system calls are a
// read's: the try is the read, where a peek before it (as Peeker's) would
// cost one more per request. Its take and give are set once, so a Read
// allocates nothing.
type IdleReader struct {
	c     net.Conn // for its errors
	rc    syscall.RawConn
	fn    func(fd uintptr) bool
	take  func() []byte
	give  func([]byte)
	buf   []byte
	n     int
	errno syscall.Errno
}

// NewIdleReader returns an IdleReader of c's socket, whose buffers come
// from take and go back through give. Like NewPeeker, it returns nil and
// no error when c has no socket or the platform is not served, and the
// error of a socket that cannot be reached any more (a closed
// connection). c must not hold bytes of its own that it read from the
// socket (a TLS connection does).
func NewIdleReader(c net.Conn, take func() []byte, give func([]byte)) (*IdleReader, error) {
	sc, ok := c.(syscall.Conn)
	if !ok || !supported {
		return nil, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &IdleReader{c: c, rc: rc, take: take, give: give}
	r.fn = r.read
	return r, nil
}

// Read waits, under the socket's read deadline, until the socket has
// bytes and reads them into a buffer from take. It returns the buffer, its
// first n bytes read, for the caller to give back; with an error it
// returns none. Its errors read as the connection's Read's do: io.EOF
// when the peer has closed, else a *net.OpError ("read") with the
// socket's error (a reset) or the poller's (a deadline, a closed
// connection). One Read at a time, and none while the connection reads.
func (r *IdleReader) Read() ([]byte, int, error) {
	err := r.rc.Read(r.fn)
	buf, n, errno := r.buf, r.n, r.errno
	r.buf, r.n, r.errno = nil, 0, 0
	switch {
	case err != nil:
		return nil, 0, opError(r.c, "read", err)
	case errno != 0:
		return nil, 0, opError(r.c, "read", os.NewSyscallError("read", errno))
	case n == 0:
		r.give(buf)
		return nil, 0, io.EOF
	}
	return buf, n, nil
}

// read is the poller's callback: false means wait until the socket is
// readable, holding no buffer.
func (r *IdleReader) read(fd uintptr) bool {
	buf := r.take()
	for {
		n, errno := sysRead(fd, buf)
		switch errno {
		case 0:
			r.buf, r.n = buf, n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			r.give(buf)
			return false
		default:
			r.give(buf)
			r.errno = errno
			return true
		}
	}
}
