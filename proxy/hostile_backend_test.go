package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readHead reads one request head from a backend connection.
func readHead(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, req.Body)
	return req, nil
}

// rawBackendFunc is a backend that reads a request and then runs write on
// the connection, byte for byte.
func rawBackendFunc(t *testing.T, write func(c net.Conn)) string {
	return serveRaw(t, "127.0.1.1", func(c net.Conn) {
		if _, err := readHead(bufio.NewReader(c)); err != nil {
			return
		}
		write(c)
	})
}

// writes returns a backend script that sends s and closes.
func writes(s string) func(net.Conn) {
	return func(c net.Conn) { _, _ = io.WriteString(c, s) }
}

// resetAfter sends s and then resets the connection (RST, not FIN).
func resetAfter(s string) func(net.Conn) {
	return func(c net.Conn) {
		_, _ = io.WriteString(c, s)
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
}

// checkNoLeak fails the test if goroutines stay above baseline: every
// connection, attempt and copy a case started must end with it.
func checkNoLeak(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Backends that answer with broken or hostile responses get the client a
// short fixed 502 (or 504), never their bytes, and leave nothing running.
func TestHostileBackendResponses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(net.Conn)
		status int
	}{
		{"garbage instead of a status line", writes("hello there\r\n\r\n"), 502},
		{"non-numeric status", writes("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"), 502},
		{"closed without a response", writes(""), 502},
		{"reset before the response", resetAfter(""), 502},
		{"reset inside the headers", resetAfter("HTTP/1.1 200 OK\r\nContent-Le"), 502},
		{"invalid content-length", writes("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nx"), 502},
		{"differing content-lengths", writes("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"), 502},
		{"header without colon", writes("HTTP/1.1 200 OK\r\nX-Bad\r\nContent-Length: 0\r\n\r\n"), 502},
		{"unsupported transfer-encoding", writes("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nx"), 502},
		{"headers over 64KiB", writes("HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 70<<10) + "\r\nContent-Length: 0\r\n\r\n"), 502},
		{"endless 1xx responses", func(c net.Conn) {
			for i := 0; i < 100000; i++ {
				if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"); err != nil {
					return
				}
			}
		}, 502},
	} {
		baseline := runtime.NumGoroutine()
		t.Run(tc.name, func(t *testing.T) {
			addr := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(rawBackendFunc(t, tc.script), "http1"))
			start := time.Now()
			res := sendRaw(t, addr, "GET /a HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n", false)
			if res.resp == nil {
				t.Fatalf("no response")
			}
			if res.informational > maxInformational {
				t.Errorf("client got %d 1xx responses, want at most %d", res.informational, maxInformational)
			}
			if res.resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", res.resp.StatusCode, tc.status)
			}
			checkPublicBody(t, res.resp.StatusCode, res.body)
			t.Logf("answered %d after %d 1xx in %v", res.resp.StatusCode, res.informational, time.Since(start))
		})
		checkNoLeak(t, baseline)
	}
}

// A 1xx response from the backend does not lose the Connection: close a
// chunked request earned (the forwarder clears the header map after each
// 1xx): the request after the body is never read.
func TestInformationalKeepsConnectionClose(t *testing.T) {
	var got []string
	var mu sync.Mutex
	addr := serveRaw(t, "127.0.1.1", func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := readHead(br)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, req.URL.Path)
			mu.Unlock()
			if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	edge := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(addr, "http1"))
	res := sendRaw(t, edge, "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n", false)
	if res.resp == nil || res.resp.StatusCode != 200 || res.informational != 1 {
		t.Fatalf("response %+v after %d 1xx, want 200 after one 103", res.resp, res.informational)
	}
	if !res.closed {
		t.Errorf("connection still open after a chunked request")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "/a" {
		t.Errorf("backend got %q, want only /a", got)
	}
}

// h1 and h2c clients of the edge listener, without keep-alive so no
// connection outlives a case.
func edgeClients() map[string]*http.Client {
	var h1, h2 http.Protocols
	h1.SetHTTP1(true)
	h2.SetUnencryptedHTTP2(true)
	return map[string]*http.Client{
		"h1":  {Transport: &http.Transport{Protocols: &h1, DisableKeepAlives: true}},
		"h2c": {Transport: &http.Transport{Protocols: &h2, DisableKeepAlives: true}},
	}
}

// A backend that sends its body a piece at a time: the client gets each
// piece before the backend sends the next (lockstep, no timing), with and
// without a Content-Length.
func TestSlowDripBodyStreams(t *testing.T) {
	for _, framing := range []string{"content-length", "chunked"} {
		for proto, c := range edgeClients() {
			t.Run(framing+"/"+proto, func(t *testing.T) {
				next := make(chan struct{})
				const pieces = 5
				addr := rawBackendFunc(t, func(c net.Conn) {
					head := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
					if framing == "chunked" {
						head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
					}
					if _, err := io.WriteString(c, head); err != nil {
						return
					}
					for i := range pieces {
						piece := string(rune('a' + i))
						if framing == "chunked" {
							piece = "1\r\n" + piece + "\r\n"
						}
						if _, err := io.WriteString(c, piece); err != nil {
							return
						}
						select {
						case <-next:
						case <-time.After(5 * time.Second):
							return
						}
					}
					if framing == "chunked" {
						_, _ = io.WriteString(c, "0\r\n\r\n")
					}
				})
				edge := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(addr, "http1"))
				resp, err := c.Get("http://" + edge + "/drip")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got := make([]byte, 0, pieces)
				for i := range pieces {
					var b [1]byte
					if _, err := io.ReadFull(resp.Body, b[:]); err != nil {
						t.Fatalf("piece %d: %v (a piece held back until the next one?)", i, err)
					}
					got = append(got, b[0])
					next <- struct{}{}
				}
				if string(got) != "abcde" {
					t.Errorf("got %q", got)
				}
			})
		}
	}
}

// A backend whose connection breaks in the middle of the body: the
// client's response fails, never ends as if complete; a client that
// leaves in the middle of an endless body ends everything it started.
func TestBrokenBodyAbortsClient(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(net.Conn)
	}{
		{"reset after part of a content-length body", resetAfter("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")},
		{"close after part of a content-length body", writes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")},
		{"reset between chunks", resetAfter("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")},
		{"close between chunks", writes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")},
		{"reset inside a chunk", resetAfter("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhello")},
	} {
		for proto, c := range edgeClients() {
			baseline := runtime.NumGoroutine()
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				edge := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(rawBackendFunc(t, tc.script), "http1"))
				resp, err := c.Get("http://" + edge + "/a")
				if err != nil {
					t.Logf("client aborted before the body: %v", err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Fatalf("status %d, body %q read as complete", resp.StatusCode, body)
				}
				t.Logf("client saw %d bytes then %v", len(body), err)
			})
			checkNoLeak(t, baseline)
		}
		t.Run(tc.name+"/raw h1 never sees the last chunk", func(t *testing.T) {
			edge := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(rawBackendFunc(t, tc.script), "http1"))
			conn, err := net.Dial("tcp", edge)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			all, err := io.ReadAll(conn)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("reading until the proxy closes: %v", err)
			}
			s := string(all)
			if strings.Contains(s, "\r\n0\r\n\r\n") {
				t.Errorf("client got a final chunk:\n%q", s)
			}
			if i := strings.Index(s, "\r\n\r\n"); i >= 0 && strings.Contains(s[:i], "Content-Length: 100") && len(s)-i-4 >= 100 {
				t.Errorf("client got a whole response:\n%q", s)
			}
		})
	}
}

// A client that leaves in the middle of an endless slow body: the proxy
// stops copying, closes the backend connection and every goroutine of the
// request ends.
func TestClientLeavesSlowBody(t *testing.T) {
	for proto, c := range edgeClients() {
		baseline := runtime.NumGoroutine()
		t.Run(proto, func(t *testing.T) {
			backendDone := make(chan struct{})
			addr := rawBackendFunc(t, func(c net.Conn) {
				defer close(backendDone)
				if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
					return
				}
				for range 1000 {
					if _, err := io.WriteString(c, "1\r\nx\r\n"); err != nil {
						return // the proxy hung up: good
					}
					time.Sleep(10 * time.Millisecond) // the drip's pace
				}
				t.Errorf("the proxy kept reading for 10s after its client left")
			})
			edge := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(addr, "http1"))
			resp, err := c.Get("http://" + edge + "/endless")
			if err != nil {
				t.Fatal(err)
			}
			var b [1]byte
			if _, err := io.ReadFull(resp.Body, b[:]); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			select {
			case <-backendDone:
			case <-time.After(10 * time.Second):
				t.Fatal("backend connection still open 10s after the client left")
			}
		})
		checkNoLeak(t, baseline)
	}
}
