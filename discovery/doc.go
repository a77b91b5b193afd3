// Package discovery turns backend sets held in Consul into whole snapshots of
// balancer.Spec per pool. A Watcher follows one Consul service with blocking
// queries (long polls that return when the service's health changes), so a
// change reaches the pool in milliseconds without polling; it keeps the last
// known set while Consul is unreachable, backs off with jitter, and exposes
// its sync state for readiness and status pages.
//
// Backends listed in the config file need no watcher, unless some are host
// names: a DNSWatcher resolves those every refresh interval into one
// backend per address and hands the whole set to the same kind of Sink,
// keeping a name's last addresses while it fails to resolve.
package discovery
