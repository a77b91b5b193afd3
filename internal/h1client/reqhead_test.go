package h1client

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
)

// headBytes returns what writeHead and req.Write write for req.
func headBytes(t *testing.T, req *http.Request) (ours, theirs string) {
	t.Helper()
	var a, b bytes.Buffer
	c := &conn{}
	bw := bufio.NewWriter(&a)
	errA := c.writeHead(bw, req)
	_ = bw.Flush()
	bw = bufio.NewWriter(&b)
	errB := req.Write(bw)
	_ = bw.Flush()
	if (errA == nil) != (errB == nil) {
		t.Fatalf("writeHead error %v, req.Write error %v", errA, errB)
	}
	return a.String(), b.String()
}

// forwardedGET is a GET as the proxy's forwarder sends it to a backend.
func forwardedGET(path, query string) *http.Request {
	return &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: "http", Host: "127.0.1.1:8080", Path: path, RawQuery: query},
		Host:   "app.example",
		Header: http.Header{
			"User-Agent":      {""}, // as the forwarder sends a request without one
			"Accept":          {"*/*"},
			"X-Forwarded-For": {"127.0.0.1"},
		},
	}
}

// The request the forwarder sends for a plain GET takes the fast path and
// comes out as req.Write writes it.
func TestWriteHeadPlainRequest(t *testing.T) {
	req := forwardedGET("/a b/ü", "x=1&y=%2F")
	req.Header["X-Two"] = []string{"one", " two\r\nthree "}
	req.Header["Bad Name"] = []string{"dropped"}
	if _, _, ok := plainHead(req); !ok {
		t.Fatal("a plain GET does not take the fast path")
	}
	ours, theirs := headBytes(t, req)
	if ours != theirs {
		t.Fatalf("heads differ\nours:   %q\ntheirs: %q", ours, theirs)
	}
	for _, tc := range []struct {
		name string
		edit func(*http.Request)
	}{
		{"POST", func(r *http.Request) { r.Method = http.MethodPost }},
		{"Connection: close", func(r *http.Request) { r.Close = true }},
		{"a Host to punycode", func(r *http.Request) { r.Host = "bücher.example" }},
		{"an invalid Host", func(r *http.Request) { r.Host = "a b" }},
		{"an IPv6 zone", func(r *http.Request) { r.Host = "[fe80::1%25en0]:80" }},
		{"a control byte in the target", func(r *http.Request) { r.URL.Opaque = "/a\x01" }},
		{"a client trace", func(r *http.Request) {
			*r = *r.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req.Clone(context.Background())
			tc.edit(r)
			if _, _, ok := plainHead(r); ok {
				t.Fatal("took the fast path; req.Write does more for it")
			}
			if ours, theirs := headBytes(t, r); ours != theirs {
				t.Fatalf("heads differ\nours:   %q\ntheirs: %q", ours, theirs)
			}
		})
	}
}

// FuzzWriteHeadSameAsWrite: for any bodiless request, writeHead writes
// the bytes req.Write writes.
func FuzzWriteHeadSameAsWrite(f *testing.F) {
	f.Add("GET", "app.example", "/p", "q=1", "Accept: */*\nUser-Agent: x\nX-A: 1\nX-A: 2")
	f.Add("HEAD", "", "/", "", "User-Agent:")
	f.Add("GET", "[::1]:80", "/a%20b", "", "X: a\r\n b\nbad name: v")
	f.Add("GET", "h", "", "", "Host: other\nContent-Length: 5\nTrailer: x\nTransfer-Encoding: chunked")
	f.Fuzz(func(t *testing.T, method, host, path, query, fieldLines string) {
		u := &url.URL{Scheme: "http", Host: "127.0.0.1:1", Path: path, RawQuery: query}
		h := http.Header{}
		for line := range strings.SplitSeq(fieldLines, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				h[k] = append(h[k], v) // names as they come, canonical or not
			}
		}
		req := &http.Request{Method: method, URL: u, Host: host, Header: h}
		if ours, theirs := headBytes(t, req); ours != theirs {
			t.Fatalf("heads differ for %q %q %q %q %q\nours:   %q\ntheirs: %q", method, host, path, query, fieldLines, ours, theirs)
		}
	})
}

// BenchmarkWriteHead compares writeHead with req.Write on the head the
// forwarder sends for a plain GET.
func BenchmarkWriteHead(b *testing.B) {
	req := forwardedGET("/api/items", "page=2")
	req.Header["Accept-Encoding"] = []string{"gzip"}
	req.Header["X-Forwarded-Proto"] = []string{"http"}
	req.Header["X-Forwarded-Host"] = []string{"app.example"}
	c := &conn{}
	bw := bufio.NewWriter(io.Discard)
	b.Run("writeHead", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = c.writeHead(bw, req)
		}
	})
	b.Run("req.Write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = req.Write(bw)
		}
	})
}
