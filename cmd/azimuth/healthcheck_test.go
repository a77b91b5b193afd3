package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pkgBackend is a real loopback backend answering 200 "backend".
func pkgBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "backend")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// pkgConfig is a run config on port 0 with one pool of backend. The drain
// delay is the caller's, so a test can look at a draining process.
func pkgConfig(t *testing.T, admin, backend string, drainDelay time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	token := ""
	if host, _, _ := net.SplitHostPort(admin); host != "127.0.0.1" {
		// An admin API beyond loopback needs a token to be a valid config.
		token = filepath.Join(dir, "token")
		if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`admin: { address: %q, token_file: %q }
shutdown: { grace: 1s, drain_delay: %s }
listeners:
  - name: http
    address: 127.0.0.1:0
    routes:
      - pool: web
pools:
  - name: web
    backends:
      - address: %s
`, admin, token, drainDelay, backend)
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// pkgClosedAddr is a loopback address nothing listens on.
func pkgClosedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestPkgHealthcheck(t *testing.T) {
	backend := pkgBackend(t)
	p := start(t, pkgConfig(t, "127.0.0.1:0", backend.Listener.Addr().String(), 20*time.Second))
	addr := p.waitLog(t, "admin listening", nil)["address"].(string)
	_, port, _ := net.SplitHostPort(addr)
	withAdmin := func(admin string) string { return pkgConfig(t, admin, backend.Listener.Addr().String(), time.Second) }
	broken := withAdmin(addr)
	data, err := os.ReadFile(broken)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, append(data, "unknown_key: 1\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	fail500 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom\nsecond line", http.StatusInternalServerError)
	}))
	defer fail500.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the probe gives up
	}))
	defer hang.Close()
	missing := filepath.Join(t.TempDir(), "none.yaml")
	closed := pkgClosedAddr(t)

	tests := []struct {
		name             string
		args             []string
		code             int
		inStdout, inErrs string
		lines            int // of output; 0 for a usage text
	}{
		{"healthz by flag", []string{"-admin", addr}, 0, "ok: GET http://" + addr + "/healthz: 200 OK in ", "", 1},
		{"readyz by flag", []string{"-admin", addr, "-ready"}, 0, "ok: GET http://" + addr + "/readyz: 200 OK in ", "", 1},
		{"address from config", []string{"-config", withAdmin(addr)}, 0, "http://" + addr + "/healthz: 200 OK", "", 1},
		{"wildcard address from config", []string{"-config", withAdmin("0.0.0.0:" + port), "-ready"}, 0, "http://127.0.0.1:" + port + "/readyz: 200 OK", "", 1},
		{"config that no longer loads", []string{"-config", broken}, 0, "http://" + addr + "/healthz: 200 OK", "does not load (" + broken + ":12: unknown_key: unknown key", 2},
		{"named config missing", []string{"-config", missing}, 1, "", "reading admin.address from config: open " + missing + ": no such file or directory", 1},
		{"nothing listening", []string{"-admin", closed}, 1, "", "GET http://" + closed + "/healthz: dial tcp " + closed + ": connect: connection refused", 1},
		{"not 200", []string{"-admin", fail500.Listener.Addr().String()}, 1, "", "/healthz: 500 Internal Server Error: boom\n", 1},
		{"no answer in time", []string{"-admin", hang.Listener.Addr().String(), "-timeout", "300ms"}, 1, "", "/healthz: no answer within the timeout", 1},
		{"not host:port", []string{"-admin", "localhost"}, 1, "", `admin address "localhost": want host:port`, 1},
		{"unknown flag exits 1, not Docker's reserved 2", []string{"-x"}, 1, "", "flag provided but not defined: -x", 0},
		{"stray argument", []string{"-admin", addr, "now"}, 1, "", `unexpected argument "now"`, 1},
		{"zero timeout", []string{"-admin", addr, "-timeout", "0s"}, 1, "", "-timeout must be > 0", 1},
		{"help", []string{"-h"}, 0, "", "Usage: azimuth healthcheck [-admin ADDR] [-config FILE] [-ready] [-timeout 2s]", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := azimuth(t, append([]string{"healthcheck"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.inStdout) || !strings.Contains(r.stderr, tt.inErrs) {
				t.Fatalf("exit %d (want %d)\nstdout %q (want %q in it)\nstderr %q (want %q in it)", r.code, tt.code, r.stdout, tt.inStdout, r.stderr, tt.inErrs)
			}
			if n := strings.Count(r.stdout+r.stderr, "\n"); tt.lines > 0 && n != tt.lines {
				t.Errorf("%d lines of output, want %d", n, tt.lines)
			}
		})
	}

	t.Run("draining: not ready, still alive", func(t *testing.T) {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := azimuth(t, "healthcheck", "-admin", addr, "-ready")
			if r.code == 1 && strings.Contains(r.stderr, "/readyz: 503 Service Unavailable: draining: shutting down") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("readiness did not fail while draining: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		if r := azimuth(t, "healthcheck", "-admin", addr); r.code != 0 {
			t.Fatalf("/healthz while draining: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}
