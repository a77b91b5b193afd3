package h1client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/internal/fastpath"
	"github.com/azimuthproxy/azimuth/internal/h1wire"
	"github.com/azimuthproxy/azimuth/internal/sockio"
)

// conn is one HTTP/1.1 connection to a backend. It serves one request at
// a time; between requests it waits in its transport's idle pool.
type conn struct {
	t     *Transport
	addr  string   // its idle pool's key: the backend's address, and its PROXY header if any
	nc    net.Conn // TLS or plain
	raw   net.Conn // the TCP connection beneath, for closedByPeer
	limit limitReader
	br    *bufio.Reader
	abort func() // closes nc; made once, run when the attempt ends

	reused    bool           // taken from the idle pool for this request
	answered  bool           // a byte of this request's response arrived
	idleTimer *time.Timer    // closes the connection once idle too long
	peek      *sockio.Peeker // made by closedByPeer's first look
	body      fixedBody      // the body of the response being read, when it has a length
	keys      []string       // scratch for writing a request head's fields in order
}

// maxInformationalWithoutHook bounds the 1xx responses of one request when
// nobody forwards them (net/http's Transport allows the same five).
const maxInformationalWithoutHook = 5

// roundTrip sends req on c and reads the response head. On success the
// response body owns c: it returns it to the pool or closes it. On error
// c is closed.
func (c *conn) roundTrip(req *http.Request, a fastpath.Attempt, got1xx func(int, textproto.MIMEHeader) error) (*http.Response, error) {
	a.OnEnd(c.abort)
	c.answered = false
	c.limit.read = 0

	var w *bodyWriter
	if req.Body == nil || req.Body == http.NoBody {
		bw := h1wire.GetWriter(c.nc)
		err := c.writeHead(bw, req)
		if err == nil {
			err = bw.Flush()
		}
		h1wire.PutWriter(bw)
		if err != nil {
			a.Clear()
			_ = c.nc.Close()
			return nil, err
		}
	} else {
		w = c.writeBody(req)
	}

	c.limit.n = c.t.o.MaxHeadBytes
	var resp *http.Response
	var err error
	for n1xx := 0; ; {
		resp, err = readResponse(c.br, req, &c.body)
		if err != nil {
			break
		}
		code := resp.StatusCode
		if code == http.StatusContinue && w != nil {
			w.proceed(true)
		}
		if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			break
		}
		c.limit.n = c.t.o.MaxHeadBytes // each 1xx head has its own limit
		if got1xx != nil {
			// Whoever forwards them bounds them (the recorder's cap).
			if err = got1xx(code, textproto.MIMEHeader(resp.Header)); err != nil {
				break
			}
			continue
		}
		if n1xx++; n1xx > maxInformationalWithoutHook {
			err = errors.New("http1 transport: too many 1xx responses")
			break
		}
	}
	c.answered = c.limit.read > 0
	if err != nil {
		a.Clear()
		_ = c.nc.Close()
		if w != nil {
			w.proceed(false)
		}
		if c.limit.n <= 0 {
			err = fmt.Errorf("http1 transport: response head over %d bytes", c.t.o.MaxHeadBytes)
		}
		return nil, err
	}
	c.limit.n = math.MaxInt64
	if w != nil {
		w.proceed(false) // a final answer first: the body stays unsent
	}

	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection is the client's now (the forwarder's tunnel
		// copies both ways); it never returns to the pool. The end of
		// the attempt still closes it.
		resp.Body = &upgradedBody{c: c}
		return resp, nil
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		c.release(a, w, keep)
		return resp, nil
	}
	resp.Body = &respBody{c: c, rc: resp.Body, a: a, w: w, keep: keep}
	return resp, nil
}

// sentAgainSafe reports whether a request that failed on a reused
// connection may go out again on another: no response byte came back, and
// the request has no body, so nothing the backend could have acted on
// is lost, and its method is safe to replay (net/http's rule).
func (c *conn) sentAgainSafe(req *http.Request) bool {
	if c.answered || (req.Body != nil && req.Body != http.NoBody) {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	// Anything else the attempt loop decides: it knows the pool's own
	// idempotency header, which this transport does not.
	return false
}

// release ends a request on c: back to the idle pool if keep and the
// request went out whole, closed otherwise.
func (c *conn) release(a fastpath.Attempt, w *bodyWriter, keep bool) {
	if !a.Clear() {
		keep = false // the attempt ended: its abort closes the connection
	}
	if keep && w != nil {
		keep = w.sent()
	}
	if keep && c.br.Buffered() > 0 {
		keep = false // bytes after the response: not ours to guess at
	}
	if keep {
		c.t.putIdle(c)
		return
	}
	_ = c.nc.Close()
}

// expire closes c if it is still idle.
func (c *conn) expire() {
	if c.t.removeIdle(c) {
		_ = c.nc.Close()
	}
}

// respBody is a response body read straight from the connection.
type respBody struct {
	c    *conn
	rc   io.ReadCloser // net/http's framing of the body over c.br
	a    fastpath.Attempt
	w    *bodyWriter
	keep bool
	done atomic.Bool // the connection was released
	err  error       // set once the end was read
}

var _ fastpath.Waiter = (*respBody)(nil)

func (b *respBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.err = err
		if b.done.CompareAndSwap(false, true) {
			b.c.release(b.a, b.w, b.keep && err == io.EOF)
		}
	}
	return n, err
}

// Waiting reports whether the next read would wait on the backend:
// nothing of the body has arrived beyond what was read.
func (b *respBody) Waiting() bool { return b.err == nil && b.c.br.Buffered() == 0 }

// Close before the end closes the connection: what is left of the body
// is never read.
func (b *respBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.c.release(b.a, b.w, false)
	}
	return nil
}

// upgradedBody is the connection after 101 Switching Protocols.
type upgradedBody struct{ c *conn }

func (u *upgradedBody) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgradedBody) Write(p []byte) (int, error) { return u.c.nc.Write(p) }
func (u *upgradedBody) Close() error                { return u.c.nc.Close() }

// limitReader bounds what a response head may read from the connection
// and counts what it read.
type limitReader struct {
	r    io.Reader
	n    int64 // bytes still allowed
	read int64 // bytes read for the current request
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	l.read += int64(n)
	return n, err
}

var errHeadTooLarge = errors.New("http1 transport: response head too large")
