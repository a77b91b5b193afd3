package balancer

import "time"

// Affinity says what the proxy reads from a request to make its Key: the
// source of the hash key (PolicyHash) and the sticky cookie. The balancer
// never reads a request; it carries these with the pool's other settings
// so that a reload changes them together with the policy, and new
// requests see both at once.
type Affinity struct {
	// HashFrom is where a request's hash key comes from; HashNone without
	// PolicyHash.
	HashFrom HashSource
	// HashName is the header or cookie named by HashFrom.
	HashName string
	// StickyCookie names the cookie that pins a client to a backend; ""
	// turns stickiness off.
	StickyCookie string
	// StickyTTL is the cookie's Max-Age; 0 makes it a session cookie.
	StickyTTL time.Duration
}

// HashSource is where a request's hash key is read.
type HashSource uint8

const (
	HashNone          HashSource = iota
	HashHeader                   // the request header HashName
	HashCookie                   // the cookie HashName
	HashClientAddress            // the client connection's address (not X-Forwarded-For)
)

// Keyed reports whether requests need a Key at all: with neither a hash
// source nor a sticky cookie, the proxy asks for none and picks as before.
func (a *Affinity) Keyed() bool { return a.HashFrom != HashNone || a.StickyCookie != "" }

// Affinity returns the pool's current affinity settings. The value is
// shared and must not be modified; one atomic load.
func (p *Pool) Affinity() *Affinity { return &p.opts().Affinity }
