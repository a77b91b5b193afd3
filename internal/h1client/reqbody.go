package h1client

import (
	"io"
	"net/http"
	"time"

	"github.com/azimuthproxy/azimuth/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// bodyWriter writes a request with a body on its own goroutine while the
// response is read. It ends when the body is written or the connection
// fails (closing the connection ends it).
type bodyWriter struct {
	done chan struct{}
	err  error // valid after done
	// gate, for Expect: 100-continue: true sends the body, false does not.
	gate chan bool
}

func (c *conn) writeBody(req *http.Request) *bodyWriter {
	w := &bodyWriter{done: make(chan struct{})}
	r := *req
	body := &readErrBody{ReadCloser: req.Body}
	r.Body = body
	if httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue") {
		w.gate = make(chan bool, 1)
		r.Body = &gatedBody{ReadCloser: body, gate: w.gate, wait: c.t.o.ExpectContinueTimeout}
	}
	go func() {
		defer close(w.done)
		bw := h1wire.GetWriter(c.nc)
		err := r.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		h1wire.PutWriter(bw)
		if body.err != nil {
			// The client's body broke off (it left, was too slow or sent
			// too much): the backend must not wait for the rest, nor
			// take what it got for the whole.
			_ = c.nc.Close()
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
// Continue, answered, or wait passed. http.Request.Write
// flushes the head before it reads a body it does not know to be in
// memory, so the backend has the head while the body waits.
type gatedBody struct {
	io.ReadCloser
	gate   chan bool
	wait   time.Duration
	opened bool
}

func (g *gatedBody) Read(p []byte) (int, error) {
	if !g.opened {
		t := time.NewTimer(g.wait)
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
