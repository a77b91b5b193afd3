package proxy

import (
	"io"
	"sync"
	"time"
)

// PipeBatch is the most of the access log written in one call to a pipe
// or a socket: PIPE_BUF, so that on a pipe shared with the process log
// (2>&1) a batch is still written atomically and no other line lands
// inside it.
const PipeBatch = 4 << 10

// FileBatch is the most written in one call to a regular file, where
// O_APPEND makes every write land whole: at about 400 bytes a line, one
// system call per 160 requests instead of per 10.
const FileBatch = 64 << 10

// lineBuffer gathers whole access-log lines and writes them together: at
// most every interval after the first waiting line, when size bytes
// would wait, and on Flush. Writing each line on its own costs one system
// call per request, a tenth of the proxy's CPU per request when it logs
// every request. A Write is always one whole line or more, so the
// underlying writer still never sees half a line.
type lineBuffer struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	size  int
	every time.Duration
	timer *time.Timer // armed while lines wait
}

func newLineBuffer(w io.Writer, every time.Duration, size int) *lineBuffer {
	b := &lineBuffer{w: w, every: every, size: size, buf: make([]byte, 0, size)}
	b.timer = time.AfterFunc(every, func() { _ = b.Flush() })
	b.timer.Stop()
	return b
}

// Write keeps p, one or more whole lines, for the next flush; a line
// longer than the buffer goes straight through.
func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > b.size {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > b.size {
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
