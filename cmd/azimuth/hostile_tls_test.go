package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// hostileH1Result is what a client writing exact bytes over TLS got back.
type hostileH1Result struct {
	resp   *http.Response // nil if no response could be read
	body   string
	closed bool // the proxy closed the connection after the response
}

// hostileSendH1 writes req over a TLS connection that negotiated
// HTTP/1.1, reads one response and reports whether the connection was
// closed after it.
func hostileSendH1(t *testing.T, f *hostileFleet, req string) hostileH1Result {
	t.Helper()
	c, err := tls.Dial("tcp", f.addr, f.tlsConfig("http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("negotiated %q, want http/1.1", p)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return hostileH1Result{closed: true}
	}
	body, _ := io.ReadAll(resp.Body)
	// A closed connection reads EOF at once; an open one times out.
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = br.ReadByte()
	return hostileH1Result{resp: resp, body: string(body), closed: err != nil && !errors.Is(err, os.ErrDeadlineExceeded)}
}

// Request smuggling and malformed requests over the TLS edge: the cases of
// proxy/hostile_test.go that decide what reaches a backend, sent byte for
// byte to the real binary's TLS listener over HTTP/1.1.
func TestHostileTLSRequests(t *testing.T) {
	f := hostileStart(t)
	const chunkedHello = "5\r\nhello\r\n0\r\n\r\n"
	for _, tc := range []struct {
		name      string
		req       string
		status    int
		forwarded int // requests the backend must get
		check     func(t *testing.T, seen hostileSeen)
	}{
		{
			name: "content-length and chunked: re-framed once, connection closed, nothing smuggled",
			req: "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n" +
				chunkedHello + "GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
			status: 200, forwarded: 1,
			check: func(t *testing.T, r hostileSeen) {
				raw := strings.ToLower(r.raw)
				if hasCL, hasTE := strings.Contains(raw, "\r\ncontent-length:"), strings.Contains(raw, "\r\ntransfer-encoding:"); hasCL == hasTE {
					t.Errorf("backend got ambiguous framing (content-length %v, transfer-encoding %v):\n%s", hasCL, hasTE, r.raw)
				}
				if r.body != "hello" || !r.complete {
					t.Errorf("backend body %q (complete %v), want hello", r.body, r.complete)
				}
			},
		},
		{
			name:   "differing content-lengths: 400",
			req:    "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
			status: 400,
		},
		{
			name:   "two transfer-encodings: 501",
			req:    "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + chunkedHello,
			status: 501,
		},
		{
			name:   "folded host: 400",
			req:    "GET /a HTTP/1.1\r\nHost: a.test\r\n evil.example\r\n\r\n",
			status: 400,
		},
		{
			name:   "header block over max_header_bytes: 431",
			req:    "GET /a HTTP/1.1\r\nHost: a.test\r\nX-Big: " + strings.Repeat("b", 80<<10) + "\r\n\r\n",
			status: 431,
		},
		{
			name:   "malformed request line: 400",
			req:    "GET /a HTTP/1.1 extra\r\nHost: a.test\r\n\r\n",
			status: 400,
		},
		{
			name:   "request line without a version: 400",
			req:    "GET /a\r\nHost: a.test\r\n\r\n",
			status: 400,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.rec.requests())
			res := hostileSendH1(t, f, tc.req)
			if res.resp == nil {
				t.Fatalf("no response, want %d", tc.status)
			}
			if res.resp.StatusCode != tc.status {
				t.Errorf("status %d (%q), want %d", res.resp.StatusCode, res.body, tc.status)
			}
			if strings.Contains(res.body, "127.0.") {
				t.Errorf("answer %q leaks an address", res.body)
			}
			if !res.closed {
				t.Errorf("connection still open after the answer")
			}
			seen := f.rec.requests()[before:]
			if len(seen) != tc.forwarded {
				for _, r := range seen {
					t.Logf("backend got:\n%s", r.raw)
				}
				t.Fatalf("backend got %d requests, want %d", len(seen), tc.forwarded)
			}
			if tc.check != nil {
				tc.check(t, seen[0])
			}
		})
	}
}
