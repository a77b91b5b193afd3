package h1server

import (
	"bufio"
	"sync"

	"github.com/azimuthproxy/azimuth/internal/h1wire"
)

// A connection holds its buffers only while it uses them: its reader from
// a request's first bytes until its head is read (with a body, or bytes
// of a next request behind it, until the response is done), its writer
// and the held body's buffer from the response's head until the response
// is done. A keep-alive connection waiting for its next request holds
// none, and neither does one whose handler waits (a proxy's, for its
// backend) with nothing of its request left to read. At a thousand
// connections that is about 10 KiB each in the heap, and with the
// collector's default pace twice that in the heap's peak
// (BenchmarkConnMemory).
//
// On a socket the wait for a request's first bytes holds no buffer either
// (connReader.wait): it reads them into a chunk taken once they are
// there, which the reader's first read copies and gives back. Elsewhere
// (TLS, or a connection handed over with bytes read already) the reader
// is taken as the wait begins, and the wait is its read.

// readers recycles the connections' buffered readers; their writers come
// from h1wire's pool, which the client shares.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readerSize) }}

// readerSize is the size of a connection's reader.
const readerSize = 4 << 10

// chunks hold a request's first bytes from the wait for them until the
// reader's first read copies them. They are the reader's size, so that
// the wait's read takes as much as the reader's own would.
var chunks = sync.Pool{New: func() any { return new([readerSize]byte) }}

func takeChunk() []byte  { return chunks.Get().(*[readerSize]byte)[:] }
func giveChunk(b []byte) { chunks.Put((*[readerSize]byte)(b)) }

// pends recycles the buffers of response bodies held before their head
// goes out (bufferBeforeChunking).
var pends = sync.Pool{New: func() any { return new([bufferBeforeChunking]byte) }}

// peek waits for the connection's next n bytes and returns them, as the
// reader's Peek does. A connection without a reader waits for the first of
// them without one, then takes one.
func (c *conn) peek(n int) ([]byte, error) {
	if c.br == nil {
		if err := c.r.wait(); err != nil {
			return nil, err
		}
	}
	return c.reader().Peek(n)
}

// reader returns the connection's reader, taken from the pool if it has
// none.
func (c *conn) reader() *bufio.Reader {
	if c.br == nil {
		c.br = readers.Get().(*bufio.Reader)
		c.br.Reset(&c.r)
	}
	return c.br
}

// writer returns the connection's writer, taken from the pool if it has
// none. A response's heads take it under the response's mu: a body read
// on a goroutine of the handler's may send 100 Continue.
func (c *conn) writer() *bufio.Writer {
	if c.bw == nil {
		c.bw = h1wire.GetWriter(errWriter{c})
	}
	return c.bw
}

// pendBuf returns an empty buffer for a response's held body, taken from
// the pool if the connection has none.
func (c *conn) pendBuf() []byte {
	if c.pend == nil {
		c.pend = pends.Get().(*[bufferBeforeChunking]byte)
	}
	return c.pend[:0]
}

// shed returns what the connection needs no more once a response is done
// and it may serve another request: the watch (a reading one is stopped:
// the wait for the next request holds no goroutine of its own), its
// writer (flushed by the response's finish), the held body's buffer, the
// request body (at its end: the response's finish read or closed it),
// and its reader unless it holds bytes of a next request.
func (c *conn) shed() {
	c.r.stopWatch()
	if c.body != nil {
		c.body.release()
		c.body = nil
	}
	c.putWriter()
	if c.br != nil && c.br.Buffered() == 0 {
		c.putReader()
	}
}

// releaseBuffers returns every buffer the connection holds, once nothing
// of the server reads or writes through them.
func (c *conn) releaseBuffers() {
	c.putReader()
	c.putWriter()
	c.r.mu.Lock()
	c.r.got = nil
	c.r.dropChunk()
	c.r.mu.Unlock()
}

// dropChunk gives back the chunk a wait read into, if it still holds one
// (its bytes were copied, or are no longer wanted). The caller holds r.mu.
func (r *connReader) dropChunk() {
	if r.chunk != nil {
		giveChunk(r.chunk)
		r.chunk = nil
	}
}

func (c *conn) putReader() {
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
}

func (c *conn) putWriter() {
	if c.bw != nil {
		h1wire.PutWriter(c.bw)
		c.bw = nil
	}
	if c.pend != nil {
		pends.Put(c.pend)
		c.pend = nil
	}
}
