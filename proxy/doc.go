// Package proxy is the request path: routing a request by host and path to
// a pool, the attempt loop that picks a backend, sends with a per-try
// timeout and, when replay is safe, redispatches to another zone, and the
// answers a client gets when every attempt failed.
//
// The loop runs before the forwarder (forward.go) writes a byte to the
// client: a retry can never follow a partial response. Health checks and
// discovery never sit on this path; they write backend state that the
// balancer reads lock-free.
//
// HTTP/1.1 is spoken by packages below it: internal/h1client sends the
// attempts of HTTP/1.1 pools, and internal/h1server (wired by the
// listeners' owner, not imported here) serves clients. The proxy takes
// their cheaper paths through the contracts of internal/fastpath, and
// fastpath.go lists each with the test that proves it taken.
//
// It imports balancer and, of the internal packages, fastpath, h1client,
// h1wire and sockio; nothing else of the project.
package proxy
