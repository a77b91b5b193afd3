package proxy

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeCalls records every Write call it gets.
type writeCalls struct {
	mu    sync.Mutex
	calls []string
}

func (w *writeCalls) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

func (w *writeCalls) snapshot() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

// logLines writes n access-log lines of a request with the given path.
func logLines(a *AccessLog, n int, path string) {
	r := httptest.NewRequest("GET", "http://example.com"+path, nil)
	x := &exchange{listener: &listener{ListenerConfig: ListenerConfig{Name: "http"}}, pool: &Pool{PoolConfig: PoolConfig{Name: "web"}}, id: "id", start: time.Now()}
	for range n {
		a.log(x, r, 200, false)
	}
}

// A buffered access log writes nothing until a flush, then every line in
// one call, each line whole.
func TestAccessLogFlushEvery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		every     time.Duration
		flush     bool // call Flush instead of waiting
		wantCalls int
	}{
		{name: "unbuffered: one write per line", every: 0, wantCalls: 3},
		{name: "flushed by Flush", every: time.Hour, flush: true, wantCalls: 1},
		{name: "flushed by the interval", every: 10 * time.Millisecond, wantCalls: 1},
	} {
		for format, newLog := range map[string]func(io.Writer, float64) *AccessLog{"json": NewJSONAccessLog, "text": NewTextAccessLog} {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				w := &writeCalls{}
				a := newLog(w, 1)
				a.FlushEvery(tc.every, 0)
				logLines(a, 3, "/a")
				if tc.every > 0 {
					if got := w.snapshot(); len(got) != 0 {
						t.Fatalf("%d writes before any flush, want none", len(got))
					}
				}
				if tc.flush {
					if err := a.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				deadline := time.Now().Add(5 * time.Second)
				for len(w.snapshot()) < tc.wantCalls && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				calls := w.snapshot()
				if len(calls) != tc.wantCalls {
					t.Fatalf("%d writes, want %d", len(calls), tc.wantCalls)
				}
				if n := strings.Count(strings.Join(calls, ""), "\n"); n != 3 {
					t.Errorf("%d lines written, want 3", n)
				}
			})
		}
	}
}

// Past the batch size the waiting lines go out without a flush, each
// write ending on a line's end and none larger than the batch, and a line
// longer than the batch goes straight through.
func TestAccessLogBufferFull(t *testing.T) {
	for _, size := range []int{PipeBatch, FileBatch} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			w := &writeCalls{}
			a := NewJSONAccessLog(w, 1)
			a.FlushEvery(time.Hour, size)
			logLines(a, 400, "/"+strings.Repeat("p", 1000))
			logLines(a, 1, "/"+strings.Repeat("q", size))
			if err := a.Flush(); err != nil {
				t.Fatal(err)
			}
			calls := w.snapshot()
			// 400 lines of over 1 KiB: the buffer fills every size/1 KiB lines.
			if want := 400 * 1024 / size; len(calls) < want {
				t.Fatalf("%d writes for over 400 KiB of lines in batches of %d, want at least %d", len(calls), size, want)
			}
			var all bytes.Buffer
			for i, c := range calls {
				if !strings.HasSuffix(c, "}\n") || len(c) > size && strings.Count(c, "\n") > 1 {
					t.Errorf("write %d (%d bytes) does not end a line alone", i, len(c))
				}
				all.WriteString(c)
			}
			if n := strings.Count(all.String(), "\n"); n != 401 {
				t.Errorf("%d lines written, want 401", n)
			}
			if n := len(calls); n > 3*400*1024/size+2 {
				t.Errorf("%d writes, more than batches of %d need", n, size)
			}
		})
	}
}

// Flush and FlushEvery are safe on a nil log (access log off).
func TestAccessLogFlushNil(t *testing.T) {
	var a *AccessLog
	a.FlushEvery(time.Second, 0)
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
}
