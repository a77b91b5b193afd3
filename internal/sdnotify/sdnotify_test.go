package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen opens a real unixgram socket; abstract puts it in the abstract
// namespace. It returns the $NOTIFY_SOCKET spelling of its address.
func listen(t *testing.T, abstract bool) (*net.UnixConn, string) {
	t.Helper()
	var name, env string
	if abstract {
		env = fmt.Sprintf("@azimuth-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
		name = "\x00" + env[1:]
	} else {
		dir, err := os.MkdirTemp("", "sdn") // short: socket paths are limited to 108 bytes
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify.sock")
		env = name
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, env
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestSendsToRealSocket(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(map[bool]string{false: "path", true: "abstract"}[abstract], func(t *testing.T) {
			conn, addr := listen(t, abstract)
			t.Setenv(EnvSocket, addr)
			tests := []struct {
				name string
				send func() error
				want string
			}{
				{"ready", Ready, "READY=1"},
				{"stopping", Stopping, "STOPPING=1"},
				{"status one line", func() error { return Status("draining\n2 in flight") }, "STATUS=draining 2 in flight"},
				{"several assignments", func() error { return Notify("STATUS=x\nREADY=1") }, "STATUS=x\nREADY=1"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if err := tt.send(); err != nil {
						t.Fatal(err)
					}
					if got := receive(t, conn); got != tt.want {
						t.Fatalf("got %q, want %q", got, tt.want)
					}
				})
			}
		})
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	conn, addr := listen(t, false)
	t.Setenv(EnvSocket, addr)
	var before, after unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &before); err != nil {
		t.Fatal(err)
	}
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &after); err != nil {
		t.Fatal(err)
	}
	got := receive(t, conn)
	rest, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
	usec, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil {
		t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC=<microseconds>", got)
	}
	if usec < before.Nano()/1000 || usec > after.Nano()/1000 {
		t.Fatalf("MONOTONIC_USEC=%d, want within [%d, %d]", usec, before.Nano()/1000, after.Nano()/1000)
	}
}

func TestWithoutSocketDoesNothing(t *testing.T) {
	t.Setenv(EnvSocket, "")
	for _, f := range []func() error{Ready, Stopping, Reloading, func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Fatalf("without %s: %v", EnvSocket, err)
		}
	}
}

func TestErrors(t *testing.T) {
	_, addr := listen(t, false)
	tests := []struct {
		name, addr, state, want string
		is                      error
	}{
		{"empty state", addr, "", "", ErrBadState},
		{"not an assignment", addr, "READY", "", ErrBadState},
		{"empty key", addr, "=1", "", ErrBadState},
		{"trailing newline", addr, "READY=1\n", "", ErrBadState},
		{"relative path", "notify.sock", "READY=1", `want an absolute path or @abstract name`, nil},
		{"nobody listening", addr + ".gone", "READY=1", "connecting to " + addr + ".gone", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NotifySocket(tt.addr, tt.state)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
