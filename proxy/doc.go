// Package proxy is the request path: routing a request by host and path to
// a pool, the attempt loop that picks a backend, sends with a per-try
// timeout and, when replay is safe, redispatches to another zone, and the
// answers a client gets when every attempt failed.
//
// The loop runs before the forwarder (forward.go) writes a byte to the
// client: a retry can never follow a partial response. Health checks and
// discovery never sit on this path; they write backend state that the
// balancer reads lock-free.
package proxy
