package h1server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// A connection's state, for draining: new (nothing read yet), active (a
// request being read or answered), idle (waiting for the next request),
// closed by the server while idle.
const (
	stateNew int32 = iota
	stateActive
	stateIdle
	stateClosed
	stateMoving // idle, and being handed over to the server's successor
)

// conn is one client connection, served by one goroutine (serve) plus,
// while a long request runs, the read that watches for the client leaving.
type conn struct {
	s      *Server
	rwc    net.Conn
	remote string
	local  net.Addr // the connection's local address, for http.LocalAddrContextKey
	born   time.Time
	state  atomic.Int32

	r  connReader
	br *bufio.Reader // nil while the connection needs none (see buffers.go)
	bw *bufio.Writer // nil while the connection needs none

	// gone is set when the connection ends, when the watch sees the
	// client leave or when a write to it fails (cancel); the context of
	// the request being served (reqCtx) ends with it.
	gone   atomic.Bool
	reqCtx atomic.Pointer[requestContext]

	// afterPOST says the last request was a POST: old clients send a
	// CRLF after its body, which is no request. (A bool, not the method:
	// a method cut from the head's string would keep the head.)
	afterPOST bool

	body     *reqBody             // the request's body, if it has one, until its response is done
	hijacked bool                 // a handler (or the HTTP/2 server) owns the connection
	tls      *tls.ConnectionState // a TLS connection's, once handshaken
	adopted  bool                 // handed over, idle, by the server this one replaced
	// parked says the connection is idle in the wait for a next request
	// (see waitNext), where a server handing over may wake it (moveIdle).
	// parkMu makes the wake-up and the end of the wait exclusive: a
	// deadline set to wake the connection must never reach its socket
	// once the connection moved, and is serving for the successor.
	parkMu sync.Mutex
	parked bool
	werr   error                       // the first write error: the connection is not reused
	keys   []string                    // scratch for writing fields in order
	pend   *[bufferBeforeChunking]byte // a response's held body; nil while none is
}

func newConn(s *Server, rwc net.Conn) *conn {
	c := &conn{s: s, rwc: rwc, born: time.Now()}
	if ra := rwc.RemoteAddr(); ra != nil {
		c.remote = ra.String()
	}
	c.local = rwc.LocalAddr()
	c.r.c = c
	c.r.cond.L = &c.r.mu
	return c
}

// serve reads and answers requests until the connection ends.
func (c *conn) serve() {
	defer c.end()

	s := c.s
	if c.adopted {
		// Handed over by the server this one replaced, idle: it waits
		// for its next request as if it had answered one here.
		if !c.waitNext(true) {
			return
		}
	} else {
		if s.headerTimeout > 0 {
			_ = c.rwc.SetReadDeadline(time.Now().Add(s.headerTimeout))
		}
		if tc, ok := c.rwc.(*tls.Conn); ok {
			if !c.handshake(tc) || c.handOffH2(tc) {
				return
			}
		} else if s.h2 != nil && c.handOffH2C() {
			return
		}
	}
	for {
		w, err := c.readRequest()
		if err != nil {
			c.refuse(err)
			return
		}
		if !c.answer(w) {
			return
		}
		c.shed()
		if !c.waitNext(false) {
			return
		}
	}
}

// waitNext waits for the next request to begin after one was answered
// (or, adopted, after the connection came from the server this one
// replaced), and reports whether the connection goes on. One already here
// (pipelined, or read by the watch) is answered even while the server
// drains: the client sent it before it could know. An idle connection of
// a draining server waits for its next request, answered with
// Connection: close, or its idle timeout (see Server.Shutdown); one of a
// server handing over moves to its successor.
func (c *conn) waitNext(adopted bool) bool {
	s := c.s
	waiting := adopted || c.buffered() < 4 && !c.r.holds()
	if waiting {
		c.state.Store(stateIdle)
		if next := s.next.Load(); next != nil {
			c.moveTo(next)
			return false
		}
	}
	if s.idleTimeout > 0 {
		_ = c.rwc.SetReadDeadline(time.Now().Add(s.idleTimeout))
	} else {
		_ = c.rwc.SetReadDeadline(time.Time{})
	}
	// As net/http does, a connection that ends with less than 4 bytes of
	// a next request is closed without an answer. A server handing over
	// wakes the connection only while it waits here (parked).
	c.park(true)
	_, err := c.peek(4)
	c.park(false)
	if c.state.Load() == stateMoving {
		c.moveTo(s.next.Load()) // woken to move (see Server.HandOver), with what it read
		return false
	}
	if err != nil {
		return false
	}
	// Active once a next request begins; after a POST, CR and LF alone
	// leave the connection idle until its head is read.
	if waiting && c.buffered() > 0 && !c.state.CompareAndSwap(stateIdle, stateActive) {
		switch c.state.Load() {
		case stateClosed:
			return false
		case stateMoving:
			c.moveTo(s.next.Load()) // the request's bytes move with it
			return false
		}
	}
	// A head read whole needs no deadline of its own: no read is left. A
	// connection still idle (a CRLF after a POST is no request) keeps its
	// idle deadline.
	if c.state.Load() != stateIdle && !c.headBuffered() {
		if s.headerTimeout > 0 {
			_ = c.rwc.SetReadDeadline(time.Now().Add(s.headerTimeout))
		} else {
			_ = c.rwc.SetReadDeadline(time.Time{})
		}
	}
	return true
}

// headBuffered reports whether the buffer holds a request head up to its
// empty line: reading it takes no more reads from the connection.
func (c *conn) headBuffered() bool {
	buf, _ := c.br.Peek(c.br.Buffered())
	if c.afterPOST {
		buf = buf[leadingCRLF(buf[:min(len(buf), 4)]):] // as skipCRLF
	}
	return bytes.Contains(buf, crlf2)
}

// answer runs the handler for one request and finishes its response. It
// reports whether the connection may serve another request.
func (c *conn) answer(w *response) (reuse bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.logger.Error("handler panicked", "client", c.remote, "panic", v, "stack", string(buf))
			}
			// The response broke: close without finishing it, so the
			// client sees a failure, never a short body as a whole one.
			w.cancel()
			c.r.stopWatch()
			reuse = false
		}
	}()
	req := w.req
	if expectsContinue(req) {
		if req.ProtoAtLeast(1, 1) && w.body != nil {
			w.canContinue, w.body.expect = true, true
		}
	} else if req.Header.Get("Expect") != "" {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusExpectationFailed)
		w.finish()
		return false
	}
	c.r.begin(w)
	if w.body == nil {
		c.r.armWatch(w)
	}
	if req.Method == http.MethodOptions && req.RequestURI == "*" {
		optionsStar(w, req)
	} else {
		c.s.o.Handler.ServeHTTP(w, req)
	}
	w.cancel()
	if c.hijacked {
		return false
	}
	c.r.disarmWatch()
	w.finish()
	if d := c.s.o.WriteTimeout; d > 0 {
		_ = c.rwc.SetWriteDeadline(time.Time{})
	}
	if w.closeAfter || c.werr != nil {
		if w.body != nil && !w.body.eof.Load() {
			c.closeWriteAndWait()
		}
		return false
	}
	return true
}

// optionsStar answers "OPTIONS *", a question about the server, as
// net/http does: 200 with no body.
func optionsStar(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	}
}

// cancel marks the connection gone and ends the context of the request
// being served. A request read after it gets an ended context.
func (c *conn) cancel() {
	c.gone.Store(true)
	if r := c.reqCtx.Load(); r != nil {
		r.cancel()
	}
}

// end releases the connection, unless a handler took it over.
func (c *conn) end() {
	c.cancel()
	c.s.untrack(c)
	if c.hijacked {
		return
	}
	_ = c.rwc.Close()
	c.r.stopWatch()
	if c.body != nil {
		c.body.release()
	}
	c.releaseBuffers()
}

// closeIfIdle closes the connection if it has sent nothing for
// newConnGrace. Called by the server while it drains.
func (c *conn) closeIfIdle() {
	if c.state.Load() == stateNew && time.Since(c.born) > newConnGrace && c.state.CompareAndSwap(stateNew, stateClosed) {
		_ = c.rwc.Close()
	}
}

// closeWriteAndWait ends a connection whose client may still be sending a
// body nobody read: a close with unread bytes resets the connection, and
// the reset can destroy the response before the client reads it. So the
// server closes its side for writing and gives the client a moment to
// read, as net/http does (RFC 9112 section 9.6).
func (c *conn) closeWriteAndWait() {
	if c.bw != nil {
		_ = c.bw.Flush()
	}
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.rwc, 1<<20))
}

// handshake runs a TLS connection's handshake, bounded by the head's
// deadline set before it, and keeps its state for the requests. A failed
// handshake ends the connection (the client learnt why from the alert).
func (c *conn) handshake(tc *tls.Conn) bool {
	if err := tc.HandshakeContext(context.Background()); err != nil {
		c.s.logger.Debug("tls handshake failed", "client", c.remote, "error", err)
		return false
	}
	st := tc.ConnectionState()
	c.tls = &st
	return true
}

// handOffH2 passes a TLS connection that negotiated HTTP/2 by ALPN to the
// HTTP/2 server, before anything of it was read.
func (c *conn) handOffH2(tc *tls.Conn) bool {
	if c.tls.NegotiatedProtocol != "h2" || c.s.h2 == nil {
		return false
	}
	c.state.Store(stateActive)
	_ = c.rwc.SetReadDeadline(time.Time{})
	c.giveToH2(tc)
	return true
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// handOffH2C passes a connection that opens with the HTTP/2 preface to the
// h2c server, with the bytes already read. The first 14 bytes decide, so
// a short HTTP/1 request never waits for 24.
func (c *conn) handOffH2C() bool {
	for _, n := range []int{14, len(h2Preface)} {
		got, err := c.peek(n)
		if err != nil || string(got) != h2Preface[:n] {
			return false
		}
	}
	c.state.Store(stateActive)
	_ = c.rwc.SetReadDeadline(time.Time{})
	buffered, _ := c.br.Peek(c.br.Buffered())
	c.giveToH2(&prefixConn{Conn: c.rwc, prefix: bytes.Clone(buffered)})
	return true
}

// giveToH2 passes the connection, found to speak HTTP/2, to the HTTP/2
// server. If none takes it (the server stopped meanwhile) it is closed:
// answering HTTP/2 bytes as HTTP/1.1 would only garble them.
func (c *conn) giveToH2(rwc net.Conn) {
	if !c.s.pushH2(rwc) {
		return // end closes it
	}
	c.r.hijack() // the HTTP/2 server owns it now
	c.releaseBuffers()
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// errTooLarge is a request head over the limit.
var errTooLarge = errors.New("request head too large")

// statusError is a request refused with its own status and reason.
type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return strconv.Itoa(e.code) + " " + e.text }

// skipCRLF drops the CRLF old clients send after a POST body (RFC 9112
// section 2.2) from the next 4 bytes, as net/http does.
func (c *conn) skipCRLF() {
	if !c.afterPOST {
		return
	}
	peek, _ := c.br.Peek(4)
	_, _ = c.br.Discard(leadingCRLF(peek))
}

// buffered returns how many bytes of a next request are already read,
// not counting a CRLF after a POST body.
func (c *conn) buffered() int {
	if c.br == nil {
		return 0
	}
	n := c.br.Buffered()
	if c.afterPOST {
		peek, _ := c.br.Peek(n)
		n -= leadingCRLF(peek)
	}
	return n
}

func leadingCRLF(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// readRequest reads the next request's head and checks it as net/http's
// server does.
func (c *conn) readRequest() (*response, error) {
	s := c.s
	c.skipCRLF()

	// A common head already read whole is parsed in place. Nothing more is
	// read for its request, which has no body: the deadline of the whole
	// request (ReadTimeout) has nothing to bound, and the one set for the
	// head or the wait (see serve) bounds no read; the watch and Hijack
	// clear it before they read.
	if _, err := c.peek(1); err != nil {
		return nil, err
	}
	ctx := newRequestContext()
	ctx.local = c.local
	var wholeDeadline time.Time
	req, head, common := readCommonHead(c.br, s.headLimit, ctx)
	if !common {
		if d := s.o.ReadTimeout; d > 0 {
			wholeDeadline = time.Now().Add(d)
		}
		c.r.startHead(s.headLimit, c.br)
		var err error
		req, err = http.ReadRequest(c.br)
		head = c.r.endHead(c.br)
		if err != nil {
			if c.r.hit {
				return nil, errTooLarge
			}
			return nil, err
		}
	}
	if !c.state.CompareAndSwap(stateNew, stateActive) && !c.state.CompareAndSwap(stateIdle, stateActive) &&
		c.state.Load() == stateClosed {
		return nil, net.ErrClosed // closed by a drain as idle while the head came in
	}
	if req.ProtoMajor != 1 {
		return nil, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	c.afterPOST = req.Method == http.MethodPost
	if err := checkHead(req, head, !common); err != nil {
		return nil, err
	}
	if d := s.o.WriteTimeout; d > 0 {
		_ = c.rwc.SetWriteDeadline(time.Now().Add(d))
	}
	if !common {
		_ = c.rwc.SetReadDeadline(wholeDeadline)
	}

	c.reqCtx.Store(ctx)
	if c.gone.Load() {
		ctx.cancel() // the connection ended while the head came in
	}
	if !common {
		req = req.WithContext(ctx)
	}
	req.RemoteAddr = c.remote
	req.TLS = c.tls
	w := &response{c: c, req: req, ctx: ctx, contentLength: -1}
	if req.Body != http.NoBody && req.Body != nil {
		// As net/http's body, one whose connection closes next and that
		// has no trailer to read is not read on Close.
		w.body = &reqBody{w: w, rc: req.Body, closing: req.Close && len(req.TransferEncoding) == 0}
		req.Body = w.body
	}
	c.body = w.body
	if w.body == nil && c.br.Buffered() == 0 {
		// Nothing more to read for this request: the reader goes back
		// while the handler runs, and the next request takes one.
		c.putReader()
	}
	w.wants10KeepAlive = req.ProtoMajor == 1 && req.ProtoMinor == 0 && hasToken(req.Header["Connection"], "keep-alive")
	w.wantsClose = req.Close || hasToken(req.Header["Connection"], "close")
	return w, nil
}

// checkHead makes the checks of a request head that net/http's server
// makes beyond its reader: a valid Host field where one is required (RFC
// 9112 section 3.2; the reader refuses two), and field names and values
// that are tokens and field text. head is the head's bytes: the reader
// drops the Host field, and its value survives in req.Host only when the
// target is not in absolute form and the value is not empty. fields asks
// for the check of field names and values too, which a head that
// readCommonHead read has passed already.
func checkHead(req *http.Request, head []byte, fields bool) error {
	host, haveHost := req.Host, req.Host != ""
	if req.URL.Host != "" || !haveHost {
		host, haveHost = hostField(head)
	}
	switch {
	case !haveHost && req.ProtoAtLeast(1, 1) && req.Method != http.MethodConnect:
		return statusError{http.StatusBadRequest, "missing required Host header"}
	case haveHost && !httpguts.ValidHostHeader(host):
		return statusError{http.StatusBadRequest, "malformed Host header"}
	case req.URL.Host != "" && haveHost && !strings.EqualFold(host, req.URL.Host):
		// RFC 9112 section 3.2.2 has an origin server ignore the field;
		// a proxy that chose one of the two would route by one name and
		// let the next hop read the other.
		return statusError{http.StatusBadRequest, "Host does not match the request target"}
	}
	if !fields {
		return nil
	}
	if err := strictLines(head); err != nil {
		return err
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return statusError{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return statusError{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	return nil
}

// strictLines refuses what net/http's reader would take but reads
// differently from other servers: obsolete line folding (RFC 9112 section
// 5.2 lets a server refuse it, and a fold that the proxy unfolded to a
// space can still reach a backend that reads it otherwise) and a CR that
// does not end a line (section 2.2). The common head reader refuses both
// already, so only heads it passed on to net/http's get here.
func strictLines(head []byte) error {
	first := true
	for line := range bytes.Lines(head) {
		body := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if bytes.IndexByte(body, '\r') >= 0 {
			return statusError{http.StatusBadRequest, "bare CR in the request head"}
		}
		if !first && len(body) > 0 && (body[0] == ' ' || body[0] == '\t') {
			return statusError{http.StatusBadRequest, "obsolete line folding"}
		}
		first = false
	}
	return nil
}

// hostField reads the Host field of a head that http.ReadRequest accepted,
// with the reader it used, so that continuation lines and white space come
// out as they did for it. It runs only for the rare heads whose Host field
// req.Host does not show.
func hostField(head []byte) (string, bool) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if _, err := tp.ReadLine(); err != nil {
		return "", false
	}
	h, _ := tp.ReadMIMEHeader()
	v, ok := h["Host"]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// refuse answers a request the server could not read, as net/http does,
// and the connection then closes. An answer is followed by a half-close
// and a short wait (closeWriteAndWait): the client may have sent more
// than the server read (a PROXY header's request behind it, a body), and
// a close with unread bytes would reset the connection, which can destroy
// the answer before the client reads it.
func (c *conn) refuse(err error) {
	const headers = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	var se statusError
	var answer string
	switch {
	case err == errTooLarge:
		const msg = "431 Request Header Fields Too Large"
		answer = "HTTP/1.1 " + msg + headers + msg
	case isUnsupportedTE(err):
		answer = "HTTP/1.1 501 Not Implemented" + headers + "Unsupported transfer encoding"
	case isCommonReadError(err):
		return // the client left or timed out: nobody to answer
	case errors.As(err, &se):
		status := strconv.Itoa(se.code) + " " + http.StatusText(se.code) + ": " + se.text
		answer = "HTTP/1.1 " + status + headers + status
	default:
		const msg = "400 Bad Request"
		answer = "HTTP/1.1 " + msg + headers + msg
	}
	_, _ = io.WriteString(c.rwc, answer)
	c.closeWriteAndWait()
}

// isUnsupportedTE matches net/http's reader's errors for a transfer
// coding other than chunked and for more than one Transfer-Encoding field
// (its unsupportedTEError, which it answers 501); the type is not
// exported.
func isUnsupportedTE(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unsupported transfer encoding") || strings.HasPrefix(msg, "too many transfer encodings")
}

func isCommonReadError(err error) bool {
	if err == io.EOF || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

func expectsContinue(r *http.Request) bool { return hasToken(r.Header["Expect"], "100-continue") }

// hasToken reports whether the field's first value holds token,
// case-insensitively, between spaces, tabs or commas. It is net/http's
// reading, looser than the list grammar of RFC 9110 section 5.6.1
// ("Connection: 0 keep-alive" counts): clients and servers have been
// tested against it for a long time, and the fuzz target holds us to it.
func hasToken(values []string, token string) bool {
	if len(values) == 0 || len(values[0]) < len(token) {
		return false
	}
	v := values[0]
	for sp := 0; sp+len(token) <= len(v); sp++ {
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end < len(v) && !isTokenBoundary(v[end]) {
			continue
		}
		if strings.EqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

// errWriter is the connection as the response's buffer writes to it: it
// keeps the first error, after which the connection is not reused.
type errWriter struct{ c *conn }

func (w errWriter) Write(p []byte) (int, error) {
	n, err := w.c.rwc.Write(p)
	if err != nil && w.c.werr == nil {
		w.c.werr = err
		w.c.cancel() // nobody to answer any more
	}
	return n, err
}
