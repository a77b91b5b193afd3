package h1client

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// readBoth reads data as a response to a request with method, through
// readResponse and through http.ReadResponse, with their bodies and what
// follows, and fails if anything differs.
func readBoth(t *testing.T, method string, data []byte) {
	t.Helper()
	req := &http.Request{Method: method}
	read := func(ours bool) string {
		br := bufio.NewReaderSize(bytes.NewReader(data), 4<<10)
		var resp *http.Response
		var err error
		if ours {
			resp, err = readResponse(br, req, &fixedBody{})
		} else {
			resp, err = http.ReadResponse(br, req)
		}
		if err != nil {
			return fmt.Sprintf("error %v", err)
		}
		body, bodyErr := io.ReadAll(resp.Body)
		after, _ := io.ReadAll(br)
		if resp.Request != req {
			t.Errorf("ours=%v: the response's request is not the one given", ours)
		}
		return fmt.Sprintf("status %q %d proto %q %d.%d\nheader %#v\nlength %d close %v te %q trailer %#v\nbody %q %v\nafter %q",
			resp.Status, resp.StatusCode, resp.Proto, resp.ProtoMajor, resp.ProtoMinor,
			resp.Header, resp.ContentLength, resp.Close, resp.TransferEncoding, resp.Trailer,
			body, bodyErr, after)
	}
	if ours, theirs := read(true), read(false); ours != theirs {
		t.Fatalf("%s %q read differently\nours:   %s\ntheirs: %s", method, data, ours, theirs)
	}
}

// Heads that backends commonly send take the one-pass path and come out
// as http.ReadResponse reads them.
func TestPlainResponseHeads(t *testing.T) {
	for _, head := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Sat, 05 Dec 2026 12:00:00 GMT\r\n\r\nhello",
		"HTTP/1.1 404 Not Found\r\nServer: nginx\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id:  abc \t\r\nx-a: 1\r\nX-A: 2\r\nkeep-alive: timeout=5\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n{}",
		"HTTP/1.1 503\r\nContent-Length: 3\r\nX-Empty:\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbusy after",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTrailer: X-T\r\nX-Obs: caf\xc3\xa9\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", // the connection ends in the body
	} {
		resp, n, ok := plainResponse([]byte(head), &http.Request{Method: http.MethodGet})
		if !ok {
			t.Errorf("%q does not take the one-pass path", head)
			continue
		}
		if want := strings.Index(head, "\r\n\r\n") + 4; n != want {
			t.Errorf("%q: head length %d, want %d", head, n, want)
		}
		if resp.Body != nil {
			t.Errorf("%q: plainResponse set a body", head)
		}
		readBoth(t, http.MethodGet, []byte(head))
	}
}

// Every head with one of http.ReadResponse's special cases goes to it,
// and the result is its own.
func TestSpecialResponseHeadsFallBack(t *testing.T) {
	for _, tc := range []struct{ method, head string }{
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"},
		{"GET", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"},
		{"GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{"GET", "HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n"},
		{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n1\r\na\r\n0\r\nX-T: v\r\n\r\nnext"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"},
		{"GET", "HTTP/1.1 200 OK\r\nX: y\r\n\r\nuntil the close"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: Close\r\n\r\na"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nPragma: no-cache\r\n\r\na"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Folded: a\r\n b\r\n\r\na"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\nX: bare LF\r\n\r\na"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: a\rb\r\n\r\na"},
		{"GET", "HTTP/1.1 200 O\rK\r\nContent-Length: 1\r\n\r\na"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nBad Name: v\r\n\r\na"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n: no name\r\n\r\na"},
		{"GET", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na"},
		{"GET", "HTTP/1.1  200 OK\r\nContent-Length: 1\r\n\r\na"},
		{"GET", "HTTP/1.1 +20 OK\r\nContent-Length: 1\r\n\r\na"},
		{"GET", "HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\na"},
		{"GET", "HTTP/1.1 600 Odd\r\nContent-Length: 1\r\n\r\na"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Len"},
		{"GET", ""},
	} {
		if _, _, ok := plainResponse([]byte(tc.head), &http.Request{Method: tc.method}); ok {
			t.Errorf("%s %q takes the one-pass path", tc.method, tc.head)
		}
		readBoth(t, tc.method, []byte(tc.head))
	}
}

// A head that is not all in the buffer yet is read by http.ReadResponse
// as it arrives, from its first byte.
func TestResponseHeadAcrossReads(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	for cut := 1; cut < len(head); cut++ {
		r := io.MultiReader(strings.NewReader(head[:cut]), strings.NewReader(head[cut:]))
		br := bufio.NewReaderSize(r, 4<<10)
		resp, err := readResponse(br, &http.Request{Method: http.MethodGet}, &fixedBody{})
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "hello" || resp.StatusCode != 200 || resp.ContentLength != 5 {
			t.Fatalf("cut at %d: status %d length %d body %q error %v", cut, resp.StatusCode, resp.ContentLength, body, err)
		}
	}
}

// The body of known length ends with its last bytes and reports a
// connection that ends early, as net/http's does.
func TestFixedBody(t *testing.T) {
	fb := &fixedBody{r: bufio.NewReader(strings.NewReader("abcdef")), n: 4}
	p := make([]byte, 3)
	if n, err := fb.Read(p); n != 3 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	if n, err := fb.Read(p); n != 1 || err != io.EOF || p[0] != 'd' {
		t.Fatalf("last read: %d %q, %v; want 1 \"d\", EOF with it", n, p[:n], err)
	}
	if n, err := fb.Read(p); n != 0 || err != io.EOF {
		t.Fatalf("read after the end: %d, %v", n, err)
	}
	short := &fixedBody{r: bufio.NewReader(strings.NewReader("ab")), n: 4}
	if got, err := io.ReadAll(short); string(got) != "ab" || err != io.ErrUnexpectedEOF {
		t.Fatalf("short body: %q, %v; want \"ab\", unexpected EOF", got, err)
	}
}

// FuzzReadResponseSameAsNetHTTP: for any bytes, readResponse reads the
// same response, body and rest as http.ReadResponse, or fails as it does.
func FuzzReadResponseSameAsNetHTTP(f *testing.F) {
	f.Add(false, []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello"))
	f.Add(false, []byte("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive, Close\r\n\r\n"))
	f.Add(true, []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"))
	f.Add(false, []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"))
	f.Add(false, []byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: \x7f\r\n\r\nabc"))
	f.Add(false, []byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\tX: y\r\n\r\nabc"))
	f.Fuzz(func(t *testing.T, head bool, data []byte) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		readBoth(t, method, data)
	})
}

// BenchmarkReadResponse compares readResponse with http.ReadResponse on a
// head a Go backend sends.
func BenchmarkReadResponse(b *testing.B) {
	data := []byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Date: Sat, 05 Dec 2026 12:00:00 GMT\r\nX-Backend: 127.0.1.1:8080\r\n\r\n" + strings.Repeat("x", 100))
	req := &http.Request{Method: http.MethodGet}
	r := bytes.NewReader(data)
	br := bufio.NewReaderSize(r, 4<<10)
	fb := &fixedBody{}
	for _, tc := range []struct {
		name string
		read func() (*http.Response, error)
	}{
		{"readResponse", func() (*http.Response, error) { return readResponse(br, req, fb) }},
		{"http.ReadResponse", func() (*http.Response, error) { return http.ReadResponse(br, req) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(data)
				br.Reset(r)
				resp, err := tc.read()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
