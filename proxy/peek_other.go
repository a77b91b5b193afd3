//go:build !linux

package proxy

// peekState is empty where closedByPeer cannot look.
type peekState struct{}

// closedByPeer cannot look without blocking here; a request that fails on
// a reused connection before any response byte is sent again instead.
func (bc *backendConn) closedByPeer() bool { return false }
