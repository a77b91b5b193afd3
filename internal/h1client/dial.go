package h1client

import "strings"

// UnixPrefix starts a backend address that names a Unix domain socket,
// "unix:/run/app.sock": the address is the backend's identity in its
// pool, as "host:port" is, and the transport dials the socket's path.
// The request's Host stays what the caller set (the client's); a request
// with none is sent with an empty Host, never the path (req.Write drops
// a Host that is not a valid one, Go issue 61431).
const UnixPrefix = "unix:"

// dialTarget returns the network and address a backend address is
// dialled at: "unix" and the socket's path for "unix:/path", else "tcp"
// and addr.
func dialTarget(addr string) (network, address string) {
	if path, ok := strings.CutPrefix(addr, UnixPrefix); ok {
		return "unix", path
	}
	return "tcp", addr
}
