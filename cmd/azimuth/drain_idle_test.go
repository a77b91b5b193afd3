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

// Once drain_delay ends, HTTP/2 connections are told to go away (GOAWAY)
// at once. An idle HTTP/1.1 keep-alive connection is not closed under its
// client, who may be sending on it (a POST lost that way cannot be sent
// again): its next request is answered with Connection: close, and one
// that sends nothing closes at its idle timeout. A slow request in flight
// keeps the process alive meanwhile.
func TestDrainAnswersIdleConnectionsThenCloses(t *testing.T) {
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
    limits: { idle_timeout: 1s }
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

	// Two idle HTTP/1.1 keep-alive connections, after one request each:
	// one will send another, one will not.
	h1, h1r := drainIdleH1(t, web)
	quiet, quietr := drainIdleH1(t, web)
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
	// HTTP/1.1: the idle connection is still there for its client; its
	// next request is answered, with Connection: close, then it closes.
	if _, err := io.WriteString(h1, "GET /fast/ HTTP/1.1\r\nHost: a.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = h1.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(h1r, nil)
	if err != nil {
		t.Fatalf("the next request on an idle connection while draining: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("the next request on an idle connection while draining: %d, close %v; want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	if n, err := h1r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("after its answer with Connection: close: read %d bytes, %v; want EOF", n, err)
	}
	// The quiet one closes at its idle timeout (1s), before the slow
	// request ends.
	_ = quiet.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := quietr.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("a quiet idle HTTP/1.1 connection: read %d bytes, %v; want EOF at its idle timeout", n, err)
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

// drainIdleH1 opens a keep-alive HTTP/1.1 connection to addr and leaves it
// idle after one request.
func drainIdleH1(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /fast/ HTTP/1.1\r\nHost: a.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("keep-alive request: %d, close %v", resp.StatusCode, resp.Close)
	}
	return c, br
}
