package h1client

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A backend addressed "unix:/path" is dialled on its socket, its
// connections are pooled under that address, and the Host sent is the
// request's, or empty when it has none: never the socket's path.
func TestSendToUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "az") // a socket path has room for ~104 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "host="+r.Host)
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	tr := newTestTransport()
	defer tr.CloseIdleConnections()
	for _, tc := range []struct{ name, host, want string }{
		{"the client's host", "api.example.com", "host=api.example.com"},
		{"the same connection again", "www.example.com", "host=www.example.com"},
		{"no host", "", "host="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: UnixPrefix + path, Path: "/x"},
				Host: tc.host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
			resp, err := tr.Send(req, &testAttempt{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != tc.want {
				t.Fatalf("body %q (%v), want %q", body, err, tc.want)
			}
		})
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections to the socket, want 1 kept alive", n)
	}
}

func TestDialTarget(t *testing.T) {
	for _, tc := range []struct{ addr, network, dial string }{
		{"unix:/run/app.sock", "unix", "/run/app.sock"},
		{"127.0.0.1:80", "tcp", "127.0.0.1:80"},
		{"[::1]:8080", "tcp", "[::1]:8080"},
		{"unix.example.com:80", "tcp", "unix.example.com:80"},
	} {
		if n, a := dialTarget(tc.addr); n != tc.network || a != tc.dial {
			t.Errorf("dialTarget(%q) = %s %s, want %s %s", tc.addr, n, a, tc.network, tc.dial)
		}
	}
}
