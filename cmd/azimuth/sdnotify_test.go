package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pkgNotifySocket is a real unixgram socket standing in for systemd's
// notify socket; the datagrams it receives arrive on the channel until
// the test ends.
func pkgNotifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return // closed by the cleanup below
			}
			msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return path, msgs
}

// pkgNextNotify waits for the next datagram.
func pkgNextNotify(t *testing.T, msgs <-chan string, what string) string {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(15 * time.Second):
		t.Fatalf("no notification (waiting for %s)", what)
		return ""
	}
}

// pkgListenerAddr reads a listener's bound address from /status.
func pkgListenerAddr(t *testing.T, admin, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Listeners []struct{ Name, Address string } `json:"listeners"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Listeners {
		if l.Name == name {
			return l.Address
		}
	}
	t.Fatalf("no listener %q in /status: %+v", name, st.Listeners)
	return ""
}

// TestPkgSdNotify runs the binary as systemd's Type=notify would: READY=1
// only once the listeners accept, RELOADING=1 then READY=1 around a
// SIGHUP, STOPPING=1 on SIGTERM.
func TestPkgSdNotify(t *testing.T) {
	sock, msgs := pkgNotifySocket(t)
	backend := pkgBackend(t)
	p := start(t, pkgConfig(t, "127.0.0.1:0", backend.Listener.Addr().String(), 100*time.Millisecond), "NOTIFY_SOCKET="+sock)

	if m := pkgNextNotify(t, msgs, "READY=1"); m != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	// Ready means serving: one try, no retry loop.
	admin := p.waitLog(t, "admin listening", nil)["address"].(string)
	resp, err := http.Get("http://" + pkgListenerAddr(t, admin, "http") + "/")
	if err != nil {
		t.Fatalf("listener right after READY=1: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "backend" {
		t.Fatalf("listener right after READY=1: %d %q", resp.StatusCode, body)
	}

	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := pkgNextNotify(t, msgs, "RELOADING=1"); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("on SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	if m := pkgNextNotify(t, msgs, "READY=1 after reload"); m != "READY=1" {
		t.Fatalf("after reload: %q, want READY=1", m)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m := pkgNextNotify(t, msgs, "STOPPING=1"); m != "STOPPING=1" {
		t.Fatalf("on SIGTERM: %q, want STOPPING=1", m)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	select {
	case m := <-msgs:
		t.Fatalf("notification after STOPPING=1: %q", m)
	default:
	}
}

// TestPkgSdNotifyBadSocket: a socket that cannot be reached is logged and
// the proxy serves anyway.
func TestPkgSdNotifyBadSocket(t *testing.T) {
	backend := pkgBackend(t)
	gone := filepath.Join(t.TempDir(), "gone.sock")
	p := start(t, pkgConfig(t, "127.0.0.1:0", backend.Listener.Addr().String(), 100*time.Millisecond), "NOTIFY_SOCKET="+gone)
	warn := p.waitLog(t, "notifying the service manager", nil)
	if e, _ := warn["error"].(string); !strings.Contains(e, "connecting to "+gone) {
		t.Errorf("warning %v, want the socket's path in it", warn)
	}
	getHealthz(t, p.waitLog(t, "admin listening", nil)["address"].(string))
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
