package proxy

import (
	"bytes"
	"io"
	"net/http/httptest"
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
				a.FlushEvery(tc.every)
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

// Past lineBufferSize the waiting lines go out without a flush, each write
// ending on a line's end, and a line longer than the buffer goes straight
// through.
func TestAccessLogBufferFull(t *testing.T) {
	w := &writeCalls{}
	a := NewJSONAccessLog(w, 1)
	a.FlushEvery(time.Hour)
	logLines(a, 200, "/"+strings.Repeat("p", 1000))
	logLines(a, 1, "/"+strings.Repeat("q", lineBufferSize))
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	calls := w.snapshot()
	if len(calls) < 3 {
		t.Fatalf("%d writes for over 200 KiB of lines, want the buffer flushed when full", len(calls))
	}
	var all bytes.Buffer
	for i, c := range calls {
		if !strings.HasSuffix(c, "}\n") || len(c) > lineBufferSize && strings.Count(c, "\n") > 1 {
			t.Errorf("write %d (%d bytes) does not end a line alone", i, len(c))
		}
		all.WriteString(c)
	}
	if n := strings.Count(all.String(), "\n"); n != 201 {
		t.Errorf("%d lines written, want 201", n)
	}
}

// Flush and FlushEvery are safe on a nil log (access log off).
func TestAccessLogFlushNil(t *testing.T) {
	var a *AccessLog
	a.FlushEvery(time.Second)
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
}
