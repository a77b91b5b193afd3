package h1server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/internal/fastpath"
	"github.com/azimuthproxy/azimuth/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// maxPostHandlerReadBytes is how much of a request body the handler left
// unread the server reads to keep the connection, as net/http does; more
// than that and the connection closes after the response.
const maxPostHandlerReadBytes = 256 << 10

// bufferBeforeChunking is how much of a body of unknown length is held
// before its head goes out: a body that ends within it gets a
// Content-Length instead of chunks.
const bufferBeforeChunking = 2048

// response is the http.ResponseWriter of one request. It follows
// net/http's server in what it writes, with one difference: no
// Content-Type is made up for a response that has none.
type response struct {
	c      *conn
	req    *http.Request
	body   *reqBody // nil without a request body
	ctx    *requestContext
	header http.Header

	status        int   // the final status, once wroteHeader
	wroteHeader   bool  // the final status is set
	headSent      bool  // the head is in the connection's buffer
	chunked       bool  // the body goes out in chunks
	contentLength int64 // declared or counted; -1 if unknown
	written       int64
	pend          []byte   // a body of unknown length, held (bufferBeforeChunking)
	trailers      []string // declared trailer names
	handlerDone   bool
	closeAfter    bool
	fullDuplex    bool

	wants10KeepAlive bool
	wantsClose       bool

	// mu orders an automatic 100 Continue, written when the handler first
	// reads the body, with the heads the handler writes.
	mu          sync.Mutex
	canContinue bool // guarded by mu
	sentHead    atomic.Bool
	// finished is set once the response is done: a goroutine the handler
	// left behind that writes or flushes later gets errResponseDone, not
	// a buffer the connection gave back (or its next response).
	finished atomic.Bool
}

// errResponseDone answers a Write or Flush after the handler returned.
var errResponseDone = errors.New("h1server: write after the handler returned")

// cancel ends the request's context.
func (w *response) cancel() { w.ctx.cancel() }

var (
	_ http.ResponseWriter    = (*response)(nil)
	_ http.Flusher           = (*response)(nil)
	_ http.Hijacker          = (*response)(nil)
	_ fastpath.HeaderAdopter = (*response)(nil)
)

// AdoptHeader makes h the response's header, in place of a new map, if
// the handler has not asked for the header yet; it reports whether it
// did. From then on h is the map Header returns. A proxy hands over the
// header it read from its backend this way rather than copying it field
// by field into a new map (fastpath.HeaderAdopter).
func (w *response) AdoptHeader(h http.Header) bool {
	if w.header != nil || w.wroteHeader || h == nil {
		return false
	}
	w.header = h
	return true
}

func (w *response) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if w.finished.Load() {
		return
	}
	if w.c.hijacked {
		w.c.s.logger.Debug("response head written after the connection was taken over", "client", w.c.remote)
		return
	}
	if w.wroteHeader {
		return // net/http logs a superfluous call; nothing is written either way
	}
	if code < 100 || code > 999 {
		panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader, w.status = true, code
	h := w.Header()
	if cl := h.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.c.s.logger.Debug("invalid Content-Length dropped from a response", "value", cl)
			delete(h, "Content-Length")
		}
	}
	// A body of unknown length waits in pend for its length to be known;
	// anything else has its head decided now.
	if w.contentLength >= 0 || !w.bodyAllowed() || w.req.Method == http.MethodHead ||
		len(h["Transfer-Encoding"]) > 0 || hasTrailers(h) {
		w.writeHead(false)
	}
}

// informational writes a 1xx head at once, with the header map as it is.
// HTTP/1.0 clients get none (RFC 9110 section 15.2).
func (w *response) informational(code int) {
	if !w.req.ProtoAtLeast(1, 1) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if code == http.StatusContinue {
		w.canContinue = false
	}
	bw := w.c.writer()
	writeStatusLine(bw, true, code)
	writeFields(bw, w.header, w.c, noBodyFields)
	_, _ = bw.WriteString("\r\n")
	_ = bw.Flush()
}

// writeContinue sends 100 Continue before the first read of a body whose
// client asked for it, unless a head went out first.
func (w *response) writeContinue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.canContinue {
		return
	}
	w.canContinue = false
	bw := w.c.writer()
	_, _ = bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	_ = bw.Flush()
}

func (w *response) bodyAllowed() bool { return bodyAllowedForStatus(w.status) }

func bodyAllowedForStatus(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func hasTrailers(h http.Header) bool {
	if len(h["Trailer"]) > 0 {
		return true
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// Fields that a head without a body, or a 304, does not carry.
var (
	noBodyFields = []string{"Content-Length", "Transfer-Encoding"}
	fields304    = []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
)

// writeHead decides the framing and writes the final head into the
// connection's buffer. done means the handler has returned and pend holds
// the whole body, whose length then goes in Content-Length. The rules are
// net/http's (server.go, chunkWriter.writeHeader).
func (w *response) writeHead(done bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.canContinue = false
	w.headSent = true
	w.sentHead.Store(true)

	h := w.Header()
	code := w.status
	isHEAD := w.req.Method == http.MethodHead
	allowed := w.bodyAllowed()
	for _, v := range h["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if name != "" && httpguts.ValidTrailerHeader(name) {
				w.trailers = append(w.trailers, name)
			}
		}
	}
	te := h.Get("Transfer-Encoding")
	if done && !hasTrailers(h) && te == "" && allowed && w.contentLength < 0 && (!isHEAD || len(w.pend) > 0) {
		w.contentLength = int64(len(w.pend))
		h.Set("Content-Length", strconv.Itoa(len(w.pend)))
	}
	keepAlives := !w.c.s.draining.Load()
	hasCL := w.contentLength >= 0
	connection := ""
	if w.wants10KeepAlive && keepAlives && (isHEAD || hasCL || !allowed) {
		if _, ok := h["Connection"]; !ok {
			connection = "keep-alive"
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.closeAfter = true
	}
	if hasToken(h["Connection"], "close") || !keepAlives {
		w.closeAfter = true
	}
	if b := w.body; b != nil && !b.eof.Load() {
		switch {
		case b.expect:
			// The client may be waiting for a 100 Continue that will not
			// come now: the rest of the body may never arrive.
			w.closeAfter = true
		case !w.closeAfter && !w.fullDuplex:
			w.closeAfter = !b.discardRest()
		}
	}

	if !allowed {
		drop := noBodyFields
		if code == http.StatusNotModified {
			drop = fields304
		}
		for _, k := range drop {
			delete(h, k)
		}
	}
	if hasCL && te != "" && te != "identity" {
		w.c.s.logger.Debug("response with both Transfer-Encoding and Content-Length; Content-Length dropped")
		delete(h, "Content-Length")
		w.contentLength, hasCL = -1, false
	}
	switch {
	case isHEAD || !allowed:
		delete(h, "Transfer-Encoding")
	case hasCL:
		delete(h, "Transfer-Encoding")
	case w.req.ProtoAtLeast(1, 1):
		if te == "identity" {
			w.closeAfter = true
			delete(h, "Transfer-Encoding")
		} else {
			w.chunked = true
			h["Transfer-Encoding"] = chunkedValue
		}
	default:
		w.closeAfter = true // HTTP/1.0: the end of the body is the end of the connection
		delete(h, "Transfer-Encoding")
	}
	if w.chunked {
		delete(h, "Content-Length")
	}
	if w.closeAfter && !hasToken(h["Connection"], "close") && code != http.StatusSwitchingProtocols {
		delete(h, "Connection")
		if w.req.ProtoAtLeast(1, 1) {
			connection = "close"
		}
	}

	bw := w.c.writer()
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code)
	writeFields(bw, h, w.c, nil)
	if connection != "" {
		_, _ = bw.WriteString("Connection: " + connection + "\r\n")
	}
	if _, ok := h["Date"]; !ok {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.Write(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	_, _ = bw.WriteString("\r\n")
}

var chunkedValue = []string{"chunked"}

func (w *response) Write(p []byte) (int, error) {
	if w.finished.Load() {
		return 0, errResponseDone
	}
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength >= 0 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if !w.headSent {
		if len(w.pend)+len(p) <= bufferBeforeChunking {
			if w.pend == nil {
				w.pend = w.c.pendBuf()
			}
			w.pend = append(w.pend, p...)
			return len(p), nil
		}
		if err := w.release(); err != nil {
			return 0, err
		}
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	return w.writeBody(p)
}

// release writes the head and what pend holds, once the body's length
// can no longer be learnt.
func (w *response) release() error {
	w.writeHead(false)
	if len(w.pend) == 0 || w.req.Method == http.MethodHead {
		return nil
	}
	_, err := w.writeBody(w.pend)
	w.pend = w.pend[:0]
	return err
}

// writeBody writes body bytes, in a chunk if the body is chunked.
func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if !w.chunked {
		return bw.Write(p)
	}
	var size [16]byte
	_, _ = bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
	_, _ = bw.WriteString("\r\n")
	n, err := bw.Write(p)
	if err != nil {
		return n, err
	}
	_, err = bw.WriteString("\r\n")
	return n, err
}

func (w *response) Flush() { _ = w.FlushError() }

// FlushError sends what is written so far; http.ResponseController uses it.
func (w *response) FlushError() error {
	if w.finished.Load() {
		return errResponseDone
	}
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if err := w.release(); err != nil {
			return err
		}
	}
	return w.c.bw.Flush()
}

// Hijack hands the connection to the handler, with the bytes the server
// has read but not parsed in the reader. The server forgets it.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.finished.Load() {
		return nil, nil, errResponseDone
	}
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		if err := w.FlushError(); err != nil {
			return nil, nil, err
		}
	}
	c.r.hijack()
	c.s.untrack(c)
	_ = c.rwc.SetDeadline(time.Time{})
	return c.rwc, bufio.NewReadWriter(c.reader(), c.writer()), nil
}

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex serve
// http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }
func (w *response) EnableFullDuplex() error            { w.fullDuplex = true; return nil }

// finish completes the response after the handler returned: the head if
// it is still held, the last chunk and trailers, and the flush.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.writeHead(true)
		if w.req.Method != http.MethodHead && len(w.pend) > 0 {
			_, _ = w.writeBody(w.pend)
		}
	}
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.WriteString("0\r\n")
		writeTrailers(bw, w.header, w.trailers, w.c)
		_, _ = bw.WriteString("\r\n")
	}
	if err := bw.Flush(); err != nil {
		w.closeAfter = true
	}
	if w.req.Method != http.MethodHead && w.contentLength >= 0 && w.bodyAllowed() && w.written != w.contentLength {
		w.closeAfter = true // short: the client would take the next bytes as the rest
	}
	if b := w.body; b != nil {
		if !w.closeAfter && !b.eof.Load() {
			w.closeAfter = !b.discardRest()
		}
		b.closed.Store(true)
	}
	w.finished.Store(true)
}

// writeTrailers writes the declared trailers and those set under
// http.TrailerPrefix.
func writeTrailers(bw *bufio.Writer, h http.Header, declared []string, c *conn) {
	var t http.Header
	for k, vv := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = http.Header{}
			}
			t[name] = vv
		}
	}
	for _, k := range declared {
		for _, v := range h[k] {
			if t == nil {
				t = http.Header{}
			}
			t.Add(k, v)
		}
	}
	writeFields(bw, t, c, nil)
}

// writeStatusLine writes "HTTP/1.1 200 OK" and its line end.
func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	if is11 {
		_, _ = bw.WriteString("HTTP/1.1 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.0 ")
	}
	if code < len(statusLines) && statusLines[code] != "" {
		_, _ = bw.WriteString(statusLines[code])
		return
	}
	var b [3]byte
	_, _ = bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	_, _ = bw.WriteString(" status code " + strconv.Itoa(code) + "\r\n")
}

// statusLines holds "200 OK\r\n" for every code with a name.
var statusLines = func() []string {
	lines := make([]string, 600)
	for code := range lines {
		if text := http.StatusText(code); text != "" {
			lines[code] = strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return lines
}()

// writeFields writes h's fields in key order, as net/http does, leaving
// out the keys in skip, trailers set under http.TrailerPrefix and
// invalid names; a line break in a value becomes a space, so a value
// never starts a field of its own (response splitting).
func writeFields(bw *bufio.Writer, h http.Header, c *conn, skip []string) {
	c.keys = h1wire.WriteFields(bw, h, c.keys, skip, true)
}

// reqBody is a request body as the handler sees it: it sends 100 Continue
// when asked for, starts the watch at the end of the body, and keeps the
// body's state for the connection's reuse.
type reqBody struct {
	w       *response
	rc      io.ReadCloser
	expect  bool // the client asked for 100 Continue
	closing bool // the connection closes after this request, and there is no trailer
	eof     atomic.Bool
	closed  atomic.Bool

	// mu is held across each read of rc. A handler may leave a goroutine
	// reading the body after it returns (a proxy copying it upstream
	// does); the connection then neither reads the body at the same time
	// nor hands its buffer to another connection until that read is over.
	mu   sync.Mutex
	read int64 // bytes read from rc; under mu
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.expect && !b.w.sentHead.Load() {
		b.w.writeContinue()
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.rc.Read(p)
	b.read += int64(n)
	b.mu.Unlock()
	if err == io.EOF && !b.eof.Swap(true) {
		b.w.c.r.armWatch(b.w)
	}
	return n, err
}

// Close reads what is left of the body, as net/http's does, so that the
// connection can serve another request: up to maxPostHandlerReadBytes,
// none if more than that is declared, and none while the client waits
// for a 100 Continue it was not sent.
func (b *reqBody) Close() error {
	if b.closed.Load() {
		return nil
	}
	b.mu.Lock()
	if b.closed.Swap(true) {
		b.mu.Unlock()
		return nil
	}
	atEnd := false
	if !b.eof.Load() && !b.closing && !(b.expect && !b.w.sentHead.Load()) {
		atEnd = b.discardLocked(true)
	}
	b.mu.Unlock()
	if atEnd && !b.eof.Swap(true) {
		b.w.c.r.armWatch(b.w)
	}
	return nil
}

// release waits for a read of the body in flight, and lets none begin:
// called once the connection is closed, so such a read fails at once,
// before its buffer goes back to the pool.
func (b *reqBody) release() {
	b.mu.Lock()
	b.closed.Store(true)
	b.mu.Unlock()
}

// discardRest reads what the handler left of the body, and reports
// whether it reached the end: if not, the connection cannot be reused.
func (b *reqBody) discardRest() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() && !b.w.handlerDone {
		return false // closed by the handler short of its end
	}
	if !b.discardLocked(false) {
		return false
	}
	b.eof.Store(true)
	return true
}

// discardLocked reads the rest of the body, up to maxPostHandlerReadBytes,
// and reports whether it reached the end. A declared rest longer than
// that is not read at all, so the response goes out at once. The limits
// are net/http's, which differ by a byte between the body's Close and
// the server's read after the handler.
func (b *reqBody) discardLocked(onClose bool) bool {
	limit := int64(maxPostHandlerReadBytes)
	if cl := b.w.req.ContentLength; cl > 0 && (cl-b.read > limit || !onClose && cl-b.read == limit) {
		return false
	}
	if !onClose {
		limit++
	}
	_, err := io.CopyN(io.Discard, b.rc, limit)
	return err == io.EOF
}

// httpDate returns the Date field's value for now, formatted once a
// second.
func httpDate() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &date{sec: sec, text: now.UTC().AppendFormat(nil, http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type date struct {
	sec  int64
	text []byte
}

var dateCache atomic.Pointer[date]
