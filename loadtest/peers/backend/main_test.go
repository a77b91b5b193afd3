package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatalf("finding a free port on %s: %v", host, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServesFixedBody starts the backend on two loopback addresses, as the
// harness does with six, and checks every address answers with the same
// body of the asked size and names itself.
func TestServesFixedBody(t *testing.T) {
	addrs := []string{freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addrs", strings.Join(addrs, ","), "-size", "37"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	for _, addr := range addrs {
		t.Run(addr, func(t *testing.T) {
			var resp *http.Response
			deadline := time.Now().Add(5 * time.Second)
			for {
				var err error
				resp, err = client.Get("http://" + addr + "/any/path")
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GET %s: %v", addr, err)
				}
				time.Sleep(10 * time.Millisecond) // polling until the listener is up
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.StatusCode != http.StatusOK || len(body) != 37 || strings.Trim(string(body), "a") != "" {
				t.Errorf("got %d with %q, want 200 with 37 bytes of 'a'", resp.StatusCode, body)
			}
			if got := resp.Header.Get("X-Backend"); got != addr {
				t.Errorf("X-Backend %q, want %q", got, addr)
			}
		})
	}
}

// TestRejectsBadFlags checks that every bad command line is an error
// before anything listens.
func TestRejectsBadFlags(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no addresses", nil, "-addrs or -syslog is required"},
		{"tls without cert", []string{"-addrs", "127.0.0.1:0", "-tls", "127.0.0.1:0"}, "-tls needs -cert and -key"},
		{"negative size", []string{"-addrs", "127.0.0.1:0", "-size", "-1"}, "-size -1"},
		{"address in use", []string{"-addrs", busy.Addr().String()}, fmt.Sprintf("listening on %s", busy.Addr())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestSyslogSink takes datagrams as a syslog daemon's socket does, counts
// them, and removes its socket when stopped.
func TestSyslogSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	done := make(chan error, 1)
	go func() { done <- sink(ctx, path, &n) }()
	var c net.Conn
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if c, err = net.Dial("unixgram", path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink did not listen: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer c.Close()
	for i := range 5 {
		if _, err := fmt.Fprintf(c, "<134>haproxy[1]: line %d", i); err != nil {
			t.Fatal(err)
		}
	}
	for n.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil || n.Load() != 5 {
		t.Errorf("sink took %d datagrams (%v), want 5", n.Load(), err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the socket file is left behind: %v", err)
	}
}
