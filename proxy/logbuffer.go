package proxy

import (
	"io"
	"sync"
	"time"
)

// lineBufferSize is how much of the access log waits before it is written
// regardless of the flush interval: PIPE_BUF, so that on a pipe shared
// with the process log (2>&1) a batch is still written atomically and no
// other line lands inside it.
const lineBufferSize = 4 << 10

// lineBuffer gathers whole access-log lines and writes them together: at
// most every interval after the first waiting line, when lineBufferSize
// bytes wait, and on Flush. Writing each line on its own costs one system
// call per request, a tenth of the proxy's CPU per request when it logs
// every request. A Write is always one whole line or more, so the
// underlying writer still never sees half a line.
type lineBuffer struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	every time.Duration
	timer *time.Timer // armed while lines wait
}

func newLineBuffer(w io.Writer, every time.Duration) *lineBuffer {
	b := &lineBuffer{w: w, every: every, buf: make([]byte, 0, lineBufferSize)}
	b.timer = time.AfterFunc(every, func() { _ = b.Flush() })
	b.timer.Stop()
	return b
}

// Write keeps p, one or more whole lines, for the next flush; a line
// longer than the buffer goes straight through.
func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > lineBufferSize {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > lineBufferSize {
		return b.w.Write(p)
	}
	if len(b.buf) == 0 {
		b.timer.Reset(b.every)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes what waits.
func (b *lineBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

// flushLocked writes the waiting lines in one call. On an error they are
// dropped, as each would have been when written alone.
func (b *lineBuffer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	b.timer.Stop()
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}
