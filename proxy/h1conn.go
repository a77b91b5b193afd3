package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/internal/sockio"
	"golang.org/x/net/http/httpguts"
)

// backendConn is one HTTP/1.1 connection to a backend. It serves one
// request at a time; between requests it waits in its transport's idle
// pool.
type backendConn struct {
	t     *h1Transport
	addr  string
	conn  net.Conn // TLS or plain
	raw   net.Conn // the TCP connection beneath, for closedByPeer
	limit limitReader
	br    *bufio.Reader
	abort func() // closes conn; made once, run when the attempt ends

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

// roundTrip sends req on bc and reads the response head. On success the
// response body owns bc: it returns it to the pool or closes it. On error
// bc is closed.
func (bc *backendConn) roundTrip(req *http.Request, life *lifetime, got1xx func(int, textproto.MIMEHeader) error) (*http.Response, error) {
	life.onEnd(bc.abort)
	bc.answered = false
	bc.limit.read = 0

	var w *bodyWriter
	if req.Body == nil || req.Body == http.NoBody {
		bw := getWriter(bc.conn)
		err := bc.writeHead(bw, req)
		if err == nil {
			err = bw.Flush()
		}
		putWriter(bw)
		if err != nil {
			life.clear()
			_ = bc.conn.Close()
			return nil, err
		}
	} else {
		w = bc.writeBody(req)
	}

	bc.limit.n = maxResponseHeaderBytes
	var resp *http.Response
	var err error
	for n1xx := 0; ; {
		resp, err = readResponse(bc.br, req, &bc.body)
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
		bc.limit.n = maxResponseHeaderBytes // each 1xx head has its own limit
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
	bc.answered = bc.limit.read > 0
	if err != nil {
		life.clear()
		_ = bc.conn.Close()
		if w != nil {
			w.proceed(false)
		}
		if bc.limit.n <= 0 {
			err = fmt.Errorf("http1 transport: response head over %d bytes", maxResponseHeaderBytes)
		}
		return nil, err
	}
	bc.limit.n = math.MaxInt64
	if w != nil {
		w.proceed(false) // a final answer first: the body stays unsent
	}

	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection is the client's now (the forwarder's tunnel
		// copies both ways); it never returns to the pool. The end of
		// the attempt still closes it.
		resp.Body = &upgradedBody{bc: bc}
		return resp, nil
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		bc.release(life, w, keep)
		return resp, nil
	}
	resp.Body = &backendBody{bc: bc, rc: resp.Body, life: life, w: w, keep: keep}
	return resp, nil
}

// sentAgainSafe reports whether a request that failed on a reused
// connection may go out again on another: no response byte came back, and
// the request has no body, so nothing the backend could have acted on
// is lost, and its method is safe to replay (net/http's rule).
func (bc *backendConn) sentAgainSafe(req *http.Request) bool {
	if bc.answered || (req.Body != nil && req.Body != http.NoBody) {
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

// release ends a request on bc: back to the idle pool if keep and the
// request went out whole, closed otherwise.
func (bc *backendConn) release(life *lifetime, w *bodyWriter, keep bool) {
	if !life.clear() {
		keep = false // the attempt ended: its abort closes conn
	}
	if keep && w != nil {
		keep = w.sent()
	}
	if keep && bc.br.Buffered() > 0 {
		keep = false // bytes after the response: not ours to guess at
	}
	if keep {
		bc.t.putIdle(bc)
		return
	}
	_ = bc.conn.Close()
}

// expire closes bc if it is still idle.
func (bc *backendConn) expire() {
	if bc.t.removeIdle(bc) {
		_ = bc.conn.Close()
	}
}

// backendBody is a response body read straight from the connection.
type backendBody struct {
	bc   *backendConn
	rc   io.ReadCloser // net/http's framing of the body over bc.br
	life *lifetime
	w    *bodyWriter
	keep bool
	done atomic.Bool // the connection was released
	err  error       // set once the end was read
}

func (b *backendBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.err = err
		if b.done.CompareAndSwap(false, true) {
			b.bc.release(b.life, b.w, b.keep && err == io.EOF)
		}
	}
	return n, err
}

// waiting reports whether the next read would wait on the backend:
// nothing of the body has arrived beyond what was read.
func (b *backendBody) waiting() bool { return b.err == nil && b.bc.br.Buffered() == 0 }

// Close before the end closes the connection: what is left of the body
// is never read.
func (b *backendBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.bc.release(b.life, b.w, false)
	}
	return nil
}

// upgradedBody is the connection after 101 Switching Protocols.
type upgradedBody struct{ bc *backendConn }

func (u *upgradedBody) Read(p []byte) (int, error)  { return u.bc.br.Read(p) }
func (u *upgradedBody) Write(p []byte) (int, error) { return u.bc.conn.Write(p) }
func (u *upgradedBody) Close() error                { return u.bc.conn.Close() }

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

// writers recycles the buffered writers requests are written through, so
// an idle connection holds none.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

func getWriter(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writers.Put(bw)
}

// bodyWriter writes a request with a body on its own goroutine while the
// response is read. It ends when the body is written or the connection
// fails (closing the connection ends it).
type bodyWriter struct {
	done chan struct{}
	err  error // valid after done
	// gate, for Expect: 100-continue: true sends the body, false does not.
	gate chan bool
}

func (bc *backendConn) writeBody(req *http.Request) *bodyWriter {
	w := &bodyWriter{done: make(chan struct{})}
	r := *req
	body := &readErrBody{ReadCloser: req.Body}
	r.Body = body
	if httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue") {
		w.gate = make(chan bool, 1)
		r.Body = &gatedBody{ReadCloser: body, gate: w.gate}
	}
	go func() {
		defer close(w.done)
		bw := getWriter(bc.conn)
		err := r.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		putWriter(bw)
		if body.err != nil {
			// The client's body broke off (it left, was too slow or sent
			// too much): the backend must not wait for the rest, nor
			// take what it got for the whole.
			_ = bc.conn.Close()
		}
		w.err = err
	}()
	return w
}

// readErrBody notes a request body's read error other than its end.
type readErrBody struct {
	io.ReadCloser
	err error // read on the writer's goroutine only
}

func (b *readErrBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// proceed tells a body waiting for 100-continue to go (true) or not.
func (w *bodyWriter) proceed(send bool) {
	if w.gate == nil {
		return
	}
	select {
	case w.gate <- send:
	default: // already decided
	}
}

// maxWriteWait bounds how long a finished response waits for its request
// body's writer to finish before the connection is given up. A backend
// that read the whole body and answered at once races the writer's last
// steps; one that answered without reading may never let it finish.
// net/http's Transport waits the same 50 ms.
const maxWriteWait = 50 * time.Millisecond

// sent reports whether the whole request went out, waiting at most
// maxWriteWait: a body still being written makes the connection unusable.
func (w *bodyWriter) sent() bool {
	select {
	case <-w.done:
		return w.err == nil
	default:
	}
	t := time.NewTimer(maxWriteWait)
	defer t.Stop()
	select {
	case <-w.done:
		return w.err == nil
	case <-t.C:
		return false
	}
}

// gatedBody holds a request body back until the backend sent 100
// Continue, answered, or expectContinueTimeout passed. http.Request.Write
// flushes the head before it reads a body it does not know to be in
// memory, so the backend has the head while the body waits.
type gatedBody struct {
	io.ReadCloser
	gate   chan bool
	opened bool
}

func (g *gatedBody) Read(p []byte) (int, error) {
	if !g.opened {
		t := time.NewTimer(expectContinueTimeout)
		select {
		case send := <-g.gate:
			t.Stop()
			if !send {
				return 0, errBodyNotSent
			}
		case <-t.C:
		}
		g.opened = true
	}
	return g.ReadCloser.Read(p)
}
