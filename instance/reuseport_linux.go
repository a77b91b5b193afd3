package instance

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// steerToOldest attaches a classic BPF program to the UDP socket's
// reuseport group that always picks the group's first socket: the one bound
// earliest that is still open. Every datagram then goes to the old socket
// until it closes, and the kernel moves the next one into its place. So
// during a reload that rebinds a listener, or a binary upgrade, QUIC
// connections keep reaching the process and transport that own them; new
// ones reach the new socket once the old one is gone (a QUIC Initial that
// the closing transport drops is sent again by the client).
//
// fd must be bound: the program then belongs to the whole group, including
// sockets of an older process that bound first.
func steerToOldest(fd int) error {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog); err != nil {
		return fmt.Errorf("attaching reuseport steering program: %w", err)
	}
	return nil
}

// steerToSecond attaches a classic BPF program to the TCP socket's
// reuseport group that always picks the group's second socket. The kernel
// keeps a group's sockets in the order they began to listen, and when one
// closes moves the last into its place; an index past the end falls back
// to the kernel's hash. So while two sockets share the port (a binary
// upgrade's new process, or a reload's new socket for a listener that
// changed kind), every new connection goes to the newer one, and the older
// one's queue only drains; alone, a socket gets them all. With three or
// more, the second oldest gets them.
//
// fd must be listening: a TCP socket joins its group at listen.
func steerToSecond(fd int) error {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 1}}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog); err != nil {
		return fmt.Errorf("attaching reuseport steering program: %w", err)
	}
	return nil
}
