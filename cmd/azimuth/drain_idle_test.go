package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"golang.org/x/net/http2"
)

// Once drain_delay ends, idle keep-alive connections are closed (HTTP/1.1)
// or told to go away (HTTP/2 GOAWAY) at once, not when the process exits:
// a slow request still in flight keeps the process alive meanwhile.
func TestDrainClosesIdleConnections(t *testing.T) {
	slow := reloadStartBackend(t, "127.0.1.1", 1500*time.Millisecond)
	fast := reloadStartBackend(t, "127.0.1.2", 0)
	dir := t.TempDir()
	ca := tlsproxyNewCA(t, "edge CA")
	tlsproxyWriteLeaf(t, ca, dir)
	path := filepath.Join(dir, "azimuth.yaml")
	reloadWrite(t, path, fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
shutdown: { drain_delay: 100ms, grace: 10s }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { path_prefix: /fast/, pool: fast }, { pool: web } ]
  - name: https
    address: 127.0.0.2:0
    tls:
      certificates: [ { cert_file: a.pem, key_file: a-key.pem } ]
    routes: [ { pool: web } ]
pools:
  - name: web
    backends: [ { address: %s, zone: zone-a } ]
  - name: fast
    backends: [ { address: %s, zone: zone-a } ]
`, slow.addr, fast.addr))
	p, admin := reloadStart(t, path)
	web, https := reloadListenerAddr(t, admin, "web"), reloadListenerAddr(t, admin, "https")

	// An idle HTTP/1.1 keep-alive connection, after one request. (A
	// connection that never sent a request is not idle to net/http until
	// it is 5 s old.)
	h1, err := net.Dial("tcp", web)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	if _, err := io.WriteString(h1, "GET /fast/ HTTP/1.1\r\nHost: a.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	h1r := bufio.NewReader(h1)
	resp, err := http.ReadResponse(h1r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("keep-alive request: %d, close %v", resp.StatusCode, resp.Close)
	}
	// An HTTP/2 connection, settled and idle.
	h2c, err := tls.Dial("tcp", https, &tls.Config{RootCAs: ca.pool, ServerName: "a.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h2c.Close()
	if _, err := io.WriteString(h2c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(h2c, bufio.NewReader(h2c))
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}

	// A request in flight that outlives drain_delay.
	inflight := make(chan string, 1)
	go func() { inflight <- drainGet("http://" + web + "/slow") }()
	testwait.Until(t, 5*time.Second, "the slow request reaches the backend", func() bool { return slow.started.Load() == 1 })

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()

	// HTTP/1.1: the idle connection is closed.
	if err := h1.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := h1r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("idle HTTP/1.1 connection: read %d bytes, %v; want EOF", n, err)
	}
	// HTTP/2: GOAWAY arrives.
	if err := h2c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("idle HTTP/2 connection: %v before GOAWAY", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeNo {
				t.Errorf("GOAWAY with %v, want NO_ERROR", ga.ErrCode)
			}
			break
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case r := <-inflight:
		t.Fatalf("the slow request ended (%s) before the idle connections were closed", r)
	default:
	}
	t.Logf("idle connections closed %v after SIGTERM", time.Since(signalled).Round(time.Millisecond))
	if r := <-inflight; r != "200 OK" {
		t.Errorf("in-flight request: %s, want 200 OK", r)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
}
