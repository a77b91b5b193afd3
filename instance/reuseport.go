package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// Once they are bound, steer attaches a program to each socket's reuseport
// group that decides which member the kernel gives what arrives; without
// one it spreads arrivals over the group by a hash of the 4-tuple:
//   - UDP goes to the oldest member (see steerToOldest): once a second
//     socket joins, about half of the running QUIC connections' packets
//     would land on a socket (or a process) that does not know them.
//   - New TCP connections go to the newest of two members (see
//     steerToSecond): the kernel resets the connections queued on a
//     listening socket when it closes, so the socket about to close must
//     get none. An accepted connection is its own socket and is not
//     affected.
//
// The program can only be attached to a group after the socket joined it
// (a socket carrying its own group cannot join another; a TCP socket joins
// at listen), and the TLS listener's sockets are bound inside
// edgetls.Listen, so Control keeps a duplicate of each descriptor for
// steer to use and close.
type reuseSockets struct {
	mu  sync.Mutex
	fds []reuseFD
}

type reuseFD struct {
	fd  int
	udp bool
}

// config is the ListenConfig to bind with; call steer or release after.
// Its TCP sockets are plain TCP, not Multipath TCP (Go's default where the
// kernel has it), whose sockets take no steering program.
func (r *reuseSockets) config() *net.ListenConfig {
	lc := &net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
				return
			}
			dup, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				serr = fmt.Errorf("keeping the socket for steering: %w", err)
				return
			}
			r.mu.Lock()
			r.fds = append(r.fds, reuseFD{fd: dup, udp: strings.HasPrefix(network, "udp")})
			r.mu.Unlock()
		})
		if err != nil {
			return err
		}
		return serr
	}}
	lc.SetMultipathTCP(false)
	return lc
}

// steer attaches the steering program to every socket bound through
// config and releases them. A socket whose bind failed (edgetls.Listen
// retries a port-0 bind whose UDP side is taken) is only released.
func (r *reuseSockets) steer() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, s := range r.fds {
		switch {
		case !bound(s.fd):
		case s.udp:
			errs = append(errs, steerToOldest(s.fd))
		default:
			errs = append(errs, steerToSecond(s.fd))
		}
		errs = append(errs, unix.Close(s.fd))
	}
	r.fds = nil
	return errors.Join(errs...)
}

// release closes the kept descriptors without steering (the bind failed).
func (r *reuseSockets) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.fds {
		_ = unix.Close(s.fd)
	}
	r.fds = nil
}

// listenTCP binds addr with SO_REUSEPORT, new connections steered to it
// while an older socket of the port drains (see reuseSockets).
func listenTCP(addr string, logger *slog.Logger) (net.Listener, error) {
	var r reuseSockets
	ln, err := r.config().Listen(context.Background(), "tcp", addr)
	if err != nil {
		r.release()
		return nil, err
	}
	if err := r.steer(); err != nil {
		// Serving matters more than a smooth upgrade: without the program
		// a client connecting just as an older socket closes may be reset.
		logger.Warn("connections may be reset during a binary upgrade", "address", addr, "error", err)
	}
	return ln, nil
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
