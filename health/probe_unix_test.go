package health

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// unixServer serves h on a Unix socket in a short temporary directory
// (socket paths are limited to about 104 bytes) and returns the backend
// address, "unix:PATH".
func unixServer(t *testing.T, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "az")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "unix:" + path
}

// An active check of a backend on a Unix socket dials the socket and
// sends a Host the backend accepts (localhost, or the configured one),
// never the socket's path; a socket nobody serves fails the check.
func TestCheckUnixSocketBackend(t *testing.T) {
	var host atomic.Value
	addr := unixServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	gone := "unix:" + filepath.Join(t.TempDir(), "none")
	f := newFixture(t, balancer.Options{ActiveChecks: true}, specs("a", addr, gone))
	for _, tc := range []struct{ name, host, want string }{
		{"no host set", "", "localhost"},
		{"host set", "api.internal", "api.internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := activeOpts(1, 1)
			o.Host = tc.host
			c, err := NewChecker(f.t, o)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.checkNow(context.Background(), f.backend(t, addr)); err != nil {
				t.Fatalf("check of %s: %v", addr, err)
			}
			if got := host.Load(); got != tc.want {
				t.Errorf("Host %q, want %q", got, tc.want)
			}
			if err := c.checkNow(context.Background(), f.backend(t, gone)); err == nil {
				t.Errorf("check of %s, which nothing serves, passed", gone)
			}
		})
	}
	if st := f.backend(t, addr).State(); st != balancer.StateUp {
		t.Errorf("socket backend %v, want up", st)
	}
	if st := f.backend(t, gone).State(); st != balancer.StateDown {
		t.Errorf("missing socket backend %v, want down", st)
	}
}
