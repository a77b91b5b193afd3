package h1server

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// held is what of its buffers a connection holds.
type held struct{ reader, writer bool }

// TestBuffersHeldOnlyInUse holds the server to buffers.go: a handler with
// nothing of its request left to read runs with no buffer, one with a body
// or a pipelined request behind it keeps the reader, and a connection
// waiting for its next request holds no writer, no held body's buffer and
// no watch, and, on a socket, no reader.
func TestBuffersHeldOnlyInUse(t *testing.T) {
	watchModes(t, testBuffersHeldOnlyInUse)
}

func testBuffersHeldOnlyInUse(t *testing.T, peek bool) {
	inHandler := make(chan held, 2)
	s, addr := startOn(t, listen(t, peek), Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := w.(*response).c // the handler runs on the connection's goroutine
		inHandler <- held{c.br != nil, c.bw != nil}
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchAfter) // watched: the watch reads meanwhile
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok") // unknown length: held before the head
	})})
	cli := dial(t, addr)
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, tc := range []struct {
		name    string
		send    string
		method  string
		handler []held // in each request's handler, before it reads or writes
	}{
		{"GET", get, "GET", []held{{}}},
		{"POST with a body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", "POST", []held{{reader: true}}},
		{"watched GET", "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n", "GET", []held{{}}},
		{"pipelined GETs", get + get, "GET", []held{{reader: true}, {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli.send(tc.send)
			for i, want := range tc.handler {
				if got := <-inHandler; got != want {
					t.Errorf("request %d: its handler ran with %+v; want %+v", i+1, got, want)
				}
				if _, body := cli.read(tc.method); body != "ok" {
					t.Fatalf("body %q", body)
				}
			}
			c := onlyConn(t, s)
			testwait.Until(t, 5*time.Second, "the connection to wait for its next request", func() bool {
				c.parkMu.Lock()
				defer c.parkMu.Unlock()
				return c.parked
			})
			c.parkMu.Lock()
			// Where it cannot wait without a reader, the reader is taken
			// as the wait begins: only a socket's is known.
			reader := peek && c.br != nil
			writer, pend := c.bw != nil, c.pend != nil
			c.parkMu.Unlock()
			if reader || writer || pend {
				t.Errorf("waiting for its next request, the connection holds a reader %v, a writer %v, a held body's buffer %v; want none",
					reader, writer, pend)
			}
			if !watchDone(c) {
				t.Error("waiting for its next request, the connection's watch still reads")
			}
		})
	}
}

// A goroutine a handler leaves behind that writes, flushes or sets a
// status after the handler returned gets an error: it touches neither a
// buffer the connection gave back nor the connection's next response.
func TestWriteAfterHandlerReturned(t *testing.T) {
	late := make(chan http.ResponseWriter, 1)
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			late <- w
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	c := dial(t, addr)
	c.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.read("GET"); body != "/first" {
		t.Fatalf("first body %q", body)
	}
	w := <-late
	if _, err := w.Write([]byte("late")); !errors.Is(err, errResponseDone) {
		t.Errorf("Write after the handler returned: %v, want errResponseDone", err)
	}
	if err := http.NewResponseController(w).Flush(); !errors.Is(err, errResponseDone) {
		t.Errorf("Flush after the handler returned: %v, want errResponseDone", err)
	}
	w.WriteHeader(http.StatusTeapot)
	if _, _, err := http.NewResponseController(w).Hijack(); !errors.Is(err, errResponseDone) {
		t.Errorf("Hijack after the handler returned: %v, want errResponseDone", err)
	}
	c.send("GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c.read("GET"); body != "/second" || resp.StatusCode != http.StatusOK {
		t.Fatalf("next response %d %q, want 200 /second", resp.StatusCode, body)
	}
}
