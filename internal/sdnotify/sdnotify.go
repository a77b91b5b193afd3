// Package sdnotify tells the service manager about the process's state
// through the sd_notify protocol: one datagram of "KEY=VALUE" lines sent
// to the unix socket named by $NOTIFY_SOCKET. systemd uses it for
// Type=notify units, so "started" means "listeners are up" rather than
// "process exists", and "stopping" shows in systemctl status while a drain
// runs. Without $NOTIFY_SOCKET every call does nothing, so the binary
// behaves the same under a shell, a container runtime or a test.
//
// It is written in Go over net.UnixConn instead of linking libsystemd,
// keeping the binary static (CGO_ENABLED=0).
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// EnvSocket is the environment variable the service manager sets to the
// socket's path; a leading '@' names a socket in the abstract namespace.
const EnvSocket = "NOTIFY_SOCKET"

// ErrBadState is returned for a state that would break the protocol's
// framing (an empty one, or a value that is not KEY=VALUE lines).
var ErrBadState = errors.New("sdnotify: state must be KEY=VALUE lines")

// Ready tells the service manager that startup finished: the listeners
// accept connections. systemd marks a Type=notify unit started only now.
func Ready() error { return Notify("READY=1") }

// Stopping tells the service manager that the process began to shut down
// (a drain), so systemctl shows "deactivating" at once.
func Stopping() error { return Notify("STOPPING=1") }

// Reloading tells the service manager that the process is re-reading its
// configuration; send Ready when done. It carries MONOTONIC_USEC, the
// CLOCK_MONOTONIC time of the request, which Type=notify-reload units
// (systemd 253 and later) require and older managers ignore.
func Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sdnotify: reading the monotonic clock: %w", err)
	}
	return Notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000))
}

// Status sets the free-form one-line status systemctl status shows.
// Newlines in s are replaced by spaces, since each line of a message is
// a separate assignment.
func Status(s string) error {
	return Notify("STATUS=" + strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
}

// Notify sends state, one or more newline-separated KEY=VALUE
// assignments, in one datagram to $NOTIFY_SOCKET. It returns nil without
// sending anything when the variable is unset or empty.
func Notify(state string) error {
	return NotifySocket(os.Getenv(EnvSocket), state)
}

// NotifySocket sends state to the socket at addr, as Notify does for
// $NOTIFY_SOCKET; an empty addr sends nothing. It exists so the address
// can be given directly (tests, a supervisor that passes it otherwise).
func NotifySocket(addr, state string) error {
	if addr == "" {
		return nil
	}
	if err := checkState(state); err != nil {
		return err
	}
	name := addr
	if name[0] == '@' {
		// An abstract name starts with NUL on the wire; spell it so
		// rather than rely on the net package mapping '@'.
		name = "\x00" + name[1:]
	} else if name[0] != '/' {
		return fmt.Errorf("sdnotify: %s=%q: want an absolute path or @abstract name", EnvSocket, addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: connecting to %s: %w", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: sending %q to %s: %w", firstLine(state), addr, err)
	}
	return nil
}

func checkState(state string) error {
	if state == "" {
		return ErrBadState
	}
	for _, line := range strings.Split(state, "\n") {
		if k, _, ok := strings.Cut(line, "="); !ok || k == "" {
			return fmt.Errorf("%w: %q", ErrBadState, line)
		}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
