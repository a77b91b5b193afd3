package main

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenConfig binds sockets with SO_REUSEPORT, so a second azimuth process
// (a binary upgrade) can bind the same ports while this one drains, and a
// reload can open a listener's new socket before closing the old one.
var listenConfig = net.ListenConfig{
	Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	},
}

func listenTCP(addr string) (net.Listener, error) {
	return listenConfig.Listen(context.Background(), "tcp", addr)
}
