package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseSockets binds sockets with SO_REUSEPORT, so a second azimuth process
// (a binary upgrade) can bind the same ports while this one drains, and a
// reload can open a listener's new socket before closing the old one.
//
// Once they are bound, steer points each UDP socket's reuseport group at
// its oldest member (see steerToOldest). Without that the kernel spreads
// datagrams over the group by a hash of the 4-tuple, and once a second
// socket joins, about half of the running QUIC connections' packets land on
// a socket (or a process) that does not know them: their requests hang
// until the client gives up. TCP needs none of this: an accepted connection
// is its own socket, and only new connections are spread over the group.
// The program can only be attached to a group after bind (a socket carrying
// its own group cannot join another), and the TLS listener's sockets are
// bound inside edgetls.Listen, so Control keeps a duplicate of each UDP
// descriptor for steer to use and close.
type reuseSockets struct {
	mu  sync.Mutex
	fds []int
}

// config is the ListenConfig to bind with; call steer or release after.
func (r *reuseSockets) config() *net.ListenConfig {
	return &net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil || !strings.HasPrefix(network, "udp") {
				return
			}
			dup, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				serr = fmt.Errorf("keeping the socket for steering: %w", err)
				return
			}
			r.mu.Lock()
			r.fds = append(r.fds, dup)
			r.mu.Unlock()
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

// steer attaches the steering program to every UDP socket bound through config
// and releases them. A socket whose bind failed (edgetls.Listen retries a
// port-0 bind whose UDP side is taken) is only released.
func (r *reuseSockets) steer() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, fd := range r.fds {
		if bound(fd) {
			errs = append(errs, steerToOldest(fd))
		}
		errs = append(errs, unix.Close(fd))
	}
	r.fds = nil
	return errors.Join(errs...)
}

// release closes the kept descriptors without steering (the bind failed).
func (r *reuseSockets) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range r.fds {
		_ = unix.Close(fd)
	}
	r.fds = nil
}

// listenTCP binds addr with SO_REUSEPORT.
func listenTCP(addr string) (net.Listener, error) {
	var r reuseSockets
	return r.config().Listen(context.Background(), "tcp", addr)
}

// bound reports whether the socket has a local port.
func bound(fd int) bool {
	switch sa, err := unix.Getsockname(fd); a := sa.(type) {
	case *unix.SockaddrInet4:
		return err == nil && a.Port != 0
	case *unix.SockaddrInet6:
		return err == nil && a.Port != 0
	default:
		return false
	}
}
