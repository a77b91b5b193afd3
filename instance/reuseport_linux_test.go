package instance

import (
	"log/slog"
	"net"
	"testing"
	"time"
)

// While a second socket shares a port (a binary upgrade's new process),
// every new connection goes to it, none to the older one's queue, which
// the kernel would reset when it closes; once the older one closes, the
// newer gets them all.
func TestNewConnectionsGoToTheNewerSocket(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	old, err := listenTCP("127.0.0.1:0", logger)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	addr := old.Addr().String()
	newer, err := listenTCP(addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()

	const dials = 64
	// Different source ports, so the kernel's hash alone would spread
	// them over both sockets.
	conns := dialN(t, addr, dials)
	if got := acceptAll(t, newer); got != dials {
		t.Errorf("the newer socket accepted %d of %d connections", got, dials)
	}
	if got := acceptAll(t, old); got != 0 {
		t.Errorf("the older socket, about to close, got %d new connections", got)
	}
	closeAll(conns)

	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	conns = dialN(t, addr, dials)
	defer closeAll(conns)
	if got := acceptAll(t, newer); got != dials {
		t.Errorf("alone, the socket accepted %d of %d connections", got, dials)
	}
}

func dialN(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

// acceptAll accepts what the socket has queued: a dialled connection is
// queued by the time its dial returns.
func acceptAll(t *testing.T, ln net.Listener) int {
	t.Helper()
	n := 0
	for {
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return n
			}
			t.Fatal(err)
		}
		c.Close()
		n++
	}
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}
