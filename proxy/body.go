package proxy

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// body holds a request body for replay. The body of a request that could
// be replayed (see load) is read into memory before the first attempt, up
// to max bytes, so any attempt can resend it; any other body, or a longer
// one, streams (the part already read, then the rest) and cannot be
// replayed, but for an attempt that never reached a backend: a connect
// failure before any of the stream was read.
type body struct {
	buf        *bytes.Buffer
	replayable bool
	stream     *streamBody // the body when not replayable
	closer     io.Closer
}

// streamBody is a body that streams to the backend, noting whether any
// attempt began to read it and how reading the client's body failed.
type streamBody struct {
	r       io.Reader
	touched atomic.Bool
	failed  atomic.Pointer[error] // the first read error other than EOF
}

func (s *streamBody) Read(p []byte) (int, error) {
	s.touched.Store(true)
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.failed.CompareAndSwap(nil, &err)
	}
	return n, err
}

// readError returns how reading the client's streaming body failed, or
// nil.
func (b *body) readError() error {
	if b.stream == nil {
		return nil
	}
	if e := b.stream.failed.Load(); e != nil {
		return *e
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// load reads r's body, up to max bytes, when replay says the request may
// be replayed, and reports an error only if the client's body failed to
// arrive. Any other body is left to stream.
func (b *body) load(r *http.Request, max int64, replay bool) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		b.replayable = true
		return nil
	}
	b.closer = r.Body
	if !replay || r.ContentLength > max {
		b.stream = &streamBody{r: r.Body}
		return nil
	}
	b.buf = bufPool.Get().(*bytes.Buffer)
	n, err := b.buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		return err
	}
	if n > max {
		b.stream = &streamBody{r: io.MultiReader(bytes.NewReader(b.buf.Bytes()), r.Body)}
		return nil
	}
	b.replayable = true
	return nil
}

// reader returns the body for one attempt, or nil when there is none.
func (b *body) reader() io.ReadCloser {
	switch {
	case b.stream != nil:
		return io.NopCloser(b.stream)
	case b.buf == nil:
		return nil
	}
	return io.NopCloser(bytes.NewReader(b.buf.Bytes()))
}

// untouched reports whether no attempt read any of a streaming body.
func (b *body) untouched() bool { return b.stream == nil || !b.stream.touched.Load() }

// release returns the buffer once nothing reads it any more: after the
// request ends.
func (b *body) release() {
	if b.buf != nil && b.buf.Cap() <= 1<<20 {
		b.buf.Reset()
		bufPool.Put(b.buf)
	}
	*b = body{}
}
