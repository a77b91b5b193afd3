package proxy

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

// body holds a request body for replay. A body of at most max bytes is read
// into memory before the first attempt, so any attempt can resend it; a
// longer one streams (the part already read, then the rest) and cannot be
// replayed.
type body struct {
	buf        *bytes.Buffer
	replayable bool
	stream     io.Reader // the body when not replayable
	closer     io.Closer
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// load reads r's body, up to max bytes, and reports an error only if the
// client's body failed to arrive.
func (b *body) load(r *http.Request, max int64) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		b.replayable = true
		return nil
	}
	b.closer = r.Body
	if r.ContentLength > max {
		b.stream = r.Body
		return nil
	}
	b.buf = bufPool.Get().(*bytes.Buffer)
	n, err := b.buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		return err
	}
	if n > max {
		b.stream = io.MultiReader(bytes.NewReader(b.buf.Bytes()), r.Body)
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

// release returns the buffer once nothing reads it any more: after the
// request ends.
func (b *body) release() {
	if b.buf != nil && b.buf.Cap() <= 1<<20 {
		b.buf.Reset()
		bufPool.Put(b.buf)
	}
	*b = body{}
}
