package h1server

import (
	"bufio"
	"io"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/internal/sockio"
)

// The watch's states.
const (
	watchOff     = iota
	watchArmed   // the timer runs; when it fires, the watch reads
	watchReading // a read is in flight on the watch's goroutine
)

// connReader is what a connection's bufio.Reader reads from. It bounds a
// request head, keeps the head's bytes for checkHead, waits for a
// request's first bytes before the connection takes a reader (wait), and
// runs the watch: once a request whose body is read has run for
// watchAfter, a goroutine waits on the connection. If the client leaves,
// the wait ends with the socket's end and the connection's context ends,
// so the request's does too. If the client sends more (its next request),
// the watch ends having seen it; else it ends with the response.
//
// On a socket the watch waits in the network poller and then peeks
// (recv with MSG_PEEK): the next request's bytes stay in the kernel for
// the connection's own read, and a watched connection holds no buffer of
// its own. At a thousand slow requests in flight that is 4 KiB each, a
// sixth of the proxy's live memory, for one more system call per watched
// request. On anything else (or where package sockio has no peek) the
// watch reads into a buffer, and the bytes wait here for the connection's
// next read.
type connReader struct {
	c *conn

	// Owned by the connection's goroutine.
	limited bool
	remain  int64
	hit     bool   // the head reached its limit
	head    []byte // the head's bytes, while reading one
	heading bool

	mu    sync.Mutex
	cond  sync.Cond
	cur   *response // the request being answered, whose body may arm the watch
	watch int
	timer *time.Timer
	buf   []byte // the watch's buffer, where it cannot peek
	got   []byte // what the watch read, not handed out yet
	err   error  // the watch's read error, for the next Read
	seen  bool   // the watch peeked at a next request, still on the socket
	abort bool   // the watch's read is being stopped on purpose
	post  bool   // the request being answered is a POST: a CRLF after it is no request

	// The watch's peek, set up by its first run; nil where it cannot
	// peek. Used by the watch's goroutine alone, while it waits.
	peekInit bool
	peeker   *sockio.Peeker

	// The wait for a request's first bytes (see wait), set up by its
	// first use; nil where it cannot read the socket holding no buffer.
	// Used by the connection's goroutine alone.
	idleInit bool
	idle     *sockio.IdleReader
	chunk    []byte // the buffer from chunks that got is in, until it is read
}

// startHead begins reading a request head: at most limit bytes, kept for
// checkHead along with what br already holds.
func (r *connReader) startHead(limit int64, br *bufio.Reader) {
	r.limited, r.hit = true, false
	r.remain = limit - int64(br.Buffered())
	buffered, _ := br.Peek(br.Buffered())
	r.head = append(r.head[:0], buffered...)
	r.heading = true
}

// endHead ends the head's limit and returns its bytes: what was read
// less what br still holds.
func (r *connReader) endHead(br *bufio.Reader) []byte {
	r.limited, r.heading = false, false
	head := r.head[:len(r.head)-br.Buffered()]
	if cap(r.head) > 4<<10 {
		r.head = nil // a big head does not stay with an idle connection
	}
	return head
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.limited {
		if r.remain <= 0 {
			r.hit = true
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), r.remain)]
	}
	n, err := r.read(p)
	if r.limited {
		r.remain -= int64(n)
	}
	if r.heading {
		r.head = append(r.head, p[:n]...)
	}
	return n, err
}

// read hands out what the watch read, or reads the connection.
func (r *connReader) read(p []byte) (int, error) {
	r.mu.Lock()
	for r.watch == watchReading {
		r.cond.Wait()
	}
	if len(r.got) > 0 {
		n := copy(p, r.got)
		r.got = r.got[n:]
		if len(r.got) == 0 && r.chunk != nil {
			giveChunk(r.chunk)
			r.chunk = nil
		}
		r.mu.Unlock()
		return n, nil
	}
	if err := r.err; err != nil {
		r.err = nil
		r.mu.Unlock()
		return 0, err
	}
	r.seen = false // what it peeked at is read now
	r.mu.Unlock()
	return r.c.rwc.Read(p)
}

// wait waits for a request's first bytes holding no buffer, where it
// can: it reads a socket into a chunk taken only once bytes are there
// (sockio.IdleReader), which got hands to the next Read, the reader's
// first. It returns the read's error: the connection's end, or its read
// deadline passing (an idle timeout, or a server handing over waking it).
// Where it cannot (a TLS connection, which holds bytes of its own, or one
// handed over with bytes read), it returns at once and the reader's read
// waits. So does it when the watch read or saw bytes already.
func (r *connReader) wait() error {
	r.mu.Lock()
	for r.watch == watchReading {
		r.cond.Wait()
	}
	ready := len(r.got) > 0 || r.err != nil || r.seen
	r.mu.Unlock()
	if ready || !r.canWait() {
		return nil
	}
	buf, n, err := r.idle.Read()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.chunk, r.got = buf, buf[:n]
	r.mu.Unlock()
	return nil
}

// canWait sets up the wait's read on its first use and reports whether
// the connection has one: a socket, on a platform package sockio serves.
func (r *connReader) canWait() bool {
	if !r.idleInit {
		r.idleInit = true
		r.idle, _ = sockio.NewIdleReader(r.c.rwc, takeChunk, giveChunk)
	}
	return r.idle != nil
}

// holds reports whether the watch read or peeked at a next request that
// the connection has not read yet.
func (r *connReader) holds() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen || r.request(r.got)
}

// request reports whether bytes read after a request begin another one,
// not counting the CRLF old clients send after a POST body.
func (r *connReader) request(b []byte) bool {
	if r.post {
		return len(b) > leadingCRLF(b)
	}
	return len(b) > 0
}

// begin makes w the request being answered.
func (r *connReader) begin(w *response) {
	r.mu.Lock()
	r.cur = w
	r.post = w.req.Method == "POST"
	r.mu.Unlock()
}

// armWatch starts the timer of the watch: w's body is read, or it has
// none, and the connection has nothing else to read until the response is
// written. A body read to its end after its handler returned arms nothing.
func (r *connReader) armWatch(w *response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watch != watchOff || r.cur != w || r.c.hijacked || len(r.got) > 0 || r.seen {
		return
	}
	r.watch = watchArmed
	if r.timer == nil {
		r.timer = time.AfterFunc(watchAfter, r.run)
	} else {
		r.timer.Reset(watchAfter)
	}
}

// disarmWatch stops a watch that has not begun reading. One that has
// keeps reading until the response is written (see conn.shed), which
// then does not wait for it to stop.
func (r *connReader) disarmWatch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = nil
	if r.watch == watchArmed {
		r.watch = watchOff
		r.timer.Stop()
	}
}

// stopWatch stops the watch and waits until its read, if any, has
// returned: before a handler takes the connection over, or as it closes.
// Bytes the read got stay for the next Read.
func (r *connReader) stopWatch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

// hijack stops the watch for good: a handler owns the connection.
func (r *connReader) hijack() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
	r.c.hijacked = true
}

func (r *connReader) stopLocked() {
	r.cur = nil
	if r.timer != nil {
		r.timer.Stop()
	}
	switch r.watch {
	case watchArmed:
		r.watch = watchOff
	case watchReading:
		r.abort = true
		_ = r.c.rwc.SetReadDeadline(aLongTimeAgo)
		for r.watch == watchReading {
			r.cond.Wait()
		}
		r.abort = false
		_ = r.c.rwc.SetReadDeadline(time.Time{})
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// run is the watch: it waits on its own goroutine, started by the timer.
func (r *connReader) run() {
	r.mu.Lock()
	if r.watch != watchArmed || len(r.got) > 0 || r.seen {
		// Stopped, or a next request is already here or seen: the
		// client has not left.
		if r.watch == watchArmed {
			r.watch = watchOff
		}
		r.mu.Unlock()
		return
	}
	r.watch = watchReading
	// The request is read: ReadTimeout no longer applies. The
	// connection's goroutine sets the idle deadline after the response,
	// under which this wait goes on as the next request's.
	_ = r.c.rwc.SetReadDeadline(time.Time{})
	peek := r.canPeek()
	if !peek && r.buf == nil {
		r.buf = make([]byte, 4<<10)
	}
	buf, post := r.buf, r.post
	r.mu.Unlock()

	var n int
	var err error
	var peeked []byte // up to 16 bytes: enough to tell a next request from CRLFs after a POST
	if peek {
		peeked, err = r.peeker.Look(true)
		n = len(peeked)
		if n > 0 && post && leadingCRLF(peeked) == n {
			// Only the CRLF old clients send after a POST body: taken off
			// the socket, as a read would, since closing a socket with
			// bytes unread resets the connection, and with it any of the
			// response not yet delivered. The read copies the same bytes.
			_, _ = r.c.rwc.Read(peeked)
		}
	} else {
		n, err = r.c.rwc.Read(buf)
	}

	r.mu.Lock()
	r.watch = watchOff
	var next bool
	if peek {
		next = n > 0 && r.request(peeked)
		r.seen = next
	} else {
		r.got = buf[:n]
		next = r.request(r.got)
		if err != nil && !r.abort {
			r.err = err
		}
	}
	aborted := r.abort
	r.cond.Broadcast()
	r.mu.Unlock()
	if next {
		// A next request began: not idle, whatever the server drains.
		r.c.state.CompareAndSwap(stateIdle, stateActive)
	}
	if err != nil && !aborted {
		r.c.cancel() // the client left: its request's context ends
	}
}

// canPeek sets up the watch's peek on its first run and reports whether
// the connection has one: a socket, on a platform package sockio serves.
// A socket closed already gets none, and the read fails as it would.
func (r *connReader) canPeek() bool {
	if !r.peekInit {
		r.peekInit = true
		r.peeker, _ = sockio.NewPeeker(r.c.rwc)
	}
	return r.peeker != nil
}
