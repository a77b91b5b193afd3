package fleet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// maxHead bounds the request head read ahead during a blackhole.
const maxHead = 16 << 10

// gatedListener wraps accepted connections so a blackhole can stop reading
// from them and so each request's arrival is stamped.
type gatedListener struct {
	net.Listener
	b *Backend
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, b: l.b, idle: true}, nil
}

// gatedConn holds reads while the backend is blackholed, and stamps when
// each request's first bytes arrived.
//
// A blackholed backend still takes the bytes a read brings (at most one
// read buffer, which the peer cannot tell from its socket buffer) but
// hands them to the server only on restore, so no request is answered. A
// request whose first bytes arrive during the blackhole is counted at once
// from its head, read ahead for that: its handler runs only on restore, or
// never if the fault outlasts the run, and the count must not wait for it.
//
// The server reads one request at a time and a proxy does not pipeline, so
// the first bytes read after a request was served begin the next one.
type gatedConn struct {
	net.Conn
	b *Backend

	// Only the server's reading goroutine touches ahead and aheadErr.
	ahead    []byte // head bytes read ahead, served before the socket
	aheadErr error  // the read-ahead's error, returned once ahead is spent

	mu      sync.Mutex
	idle    bool      // no byte of the next request read yet
	arrival time.Time // when the current request's first bytes were read
	counted bool      // the current request was counted on arrival
}

func (c *gatedConn) Read(p []byte) (int, error) {
	if len(c.ahead) > 0 || c.aheadErr != nil {
		if !c.b.waitOpen(context.Background()) {
			return 0, net.ErrClosed
		}
		if len(c.ahead) == 0 {
			err := c.aheadErr
			c.aheadErr = nil
			return 0, err
		}
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if at, fresh := c.stamp(); fresh && c.b.Fault().Kind == Blackhole {
			c.countAhead(p[:n], at)
		}
	}
	// Hold what the read brought, data or the peer's close, until
	// restore; a deadline passes, since the server set it to abort this
	// read.
	var ne net.Error
	if (n > 0 || (err != nil && !(errors.As(err, &ne) && ne.Timeout()))) && !c.b.waitOpen(context.Background()) {
		return 0, net.ErrClosed
	}
	return n, err
}

// stamp notes the arrival of bytes; fresh reports that they begin a
// request, which then arrived now.
func (c *gatedConn) stamp() (at time.Time, fresh bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.idle {
		return c.arrival, false
	}
	c.idle, c.arrival, c.counted = false, now, false
	return now, true
}

// countAhead reads the rest of a request head that began with first and
// counts the request as arrived at at. A head that does not complete
// (the peer stalls, or the server aborts the read with a deadline) is left
// for the handler to count, with the same arrival time, when it runs.
func (c *gatedConn) countAhead(first []byte, at time.Time) {
	head := append(make([]byte, 0, max(len(first), 1024)), first...)
	buf := make([]byte, 4096)
	for !bytes.Contains(head, []byte("\r\n\r\n")) && len(head) < maxHead {
		n, err := c.Conn.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				c.aheadErr = err // a deadline is the server's, and passes
			}
			break
		}
	}
	c.ahead = head[len(first):]
	if !bytes.Contains(head, []byte("\r\n\r\n")) {
		return
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return
	}
	c.b.count(req, at)
	c.mu.Lock()
	c.counted = true
	c.mu.Unlock()
}

// request returns the current request's arrival and whether it was
// counted on arrival; the handler counts it otherwise.
func (c *gatedConn) request() (at time.Time, counted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.arrival.IsZero() {
		return time.Now(), c.counted
	}
	return c.arrival, c.counted
}

// served marks the current request done: the next bytes begin another.
func (c *gatedConn) served() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle, c.counted = true, false
}
