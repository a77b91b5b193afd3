package h1wire

import (
	"bufio"
	"io"
	"sync"
)

// writers recycles the buffered writers messages are written through, so
// that a connection between messages (a client's idle backend connection)
// holds none, and the server's connections and the client's share one
// supply.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// GetWriter returns a pooled 4 KiB buffered writer that writes to w.
func GetWriter(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

// PutWriter returns bw to the pool. It drops what bw had not flushed and
// its writer, which the pool must not keep alive.
func PutWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writers.Put(bw)
}
