package h1server

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// The watch's states.
const (
	watchOff     = iota
	watchArmed   // the timer runs; when it fires, the watch reads
	watchReading // a read is in flight on the watch's goroutine
)

// connReader is what a connection's bufio.Reader reads from. It bounds a
// request head, keeps the head's bytes for checkHead, and runs the watch:
// once a request whose body is read has run for watchAfter, a read on its
// own goroutine waits on the connection. If the client leaves, the read
// fails and the connection's context ends, so the request's does too. If
// the client sends more (its next request), the bytes wait here for the
// connection's next read. Either way the watch's read is the one the next
// request needed, not an extra one.
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
	buf   []byte // the watch's buffer
	got   []byte // what the watch read, not handed out yet
	err   error  // the watch's read error, for the next Read
	abort bool   // the watch's read is being stopped on purpose
	post  bool   // the request being answered is a POST: a CRLF after it is no request
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
		r.mu.Unlock()
		return n, nil
	}
	if err := r.err; err != nil {
		r.err = nil
		r.mu.Unlock()
		return 0, err
	}
	r.mu.Unlock()
	return r.c.rwc.Read(p)
}

// holds reports whether the watch read bytes not handed out yet.
func (r *connReader) holds() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.request(r.got)
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
	if r.watch != watchOff || r.cur != w || r.c.hijacked || len(r.got) > 0 {
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
// keeps reading: it reads the next request.
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

// run is the watch: it reads on its own goroutine, started by the timer.
func (r *connReader) run() {
	r.mu.Lock()
	if r.watch != watchArmed || len(r.got) > 0 {
		// Stopped, or bytes of a next request are already here: the
		// client has not left, and the buffer is still in use.
		if r.watch == watchArmed {
			r.watch = watchOff
		}
		r.mu.Unlock()
		return
	}
	r.watch = watchReading
	// The request is read: ReadTimeout no longer applies. The
	// connection's goroutine sets the idle deadline after the response,
	// under which this read goes on as the next request's.
	_ = r.c.rwc.SetReadDeadline(time.Time{})
	if r.buf == nil {
		r.buf = make([]byte, 4<<10)
	}
	buf := r.buf
	r.mu.Unlock()

	n, err := r.c.rwc.Read(buf)

	r.mu.Lock()
	r.watch = watchOff
	r.got = buf[:n]
	next := r.request(r.got)
	aborted := r.abort
	if err != nil && !aborted {
		r.err = err
	}
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
