// Package acme obtains and renews a TLS listener's certificates from an
// ACME CA (RFC 8555) through certmagic, the library Caddy is built on: one
// Manager per listener with an acme block, answering HTTP-01 challenges on
// the proxy's plain listeners and TLS-ALPN-01 ones in the listener's own
// handshakes. Its storage is a directory, or Consul's KV store
// (ConsulStorage), where the proxies of a fleet share one account, one
// certificate per name and a lock per order, so that one of them orders or
// renews a certificate and every one of them serves it.
//
// edgetls serves what a Manager holds beside the listener's certificate
// files: a managed name gets its managed certificate once obtained, every
// other name (and a managed one until then) the files'.
package acme
