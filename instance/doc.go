// Package instance is one running proxy: the config generations it runs
// and how one replaces the next, its pools' and listeners' lifecycles, its
// admin API, its status and its readiness. A command gives it parsed
// configs and decides when to drain; everything between a config and
// requests being served is here.
//
// A reload has two halves. Plan does every step that can fail: the Consul
// client, each pool's transport, TLS files and health settings, the admin
// token, binding the sockets of new listeners (and, for the first config,
// the admin listener), and building the request path's generation. A plan that fails
// leaves nothing of its config behind: no goroutine, socket, registered
// pool or metric series, and the running config serves on as it was.
// Commit makes a plan the running config and cannot fail: pools take their
// settings and start what they run, the generation is published, new
// listeners start accepting, and what the config no longer has is retired.
// Apply is both; Reload reads a file first and logs what it refused. Until
// a plan is committed or discarded no other reload starts, so a plan never
// goes stale. The last failed plan or commit is what /status and the
// azimuth_config_* series report of the last reload.
//
// State outlives config: a pool a reload keeps keeps its balancer pool
// (and so every backend's live state), its transport, health tracker and
// Consul watcher, each replaced only when its own settings change; a
// listener keeps its socket while its address and binding settings stay,
// and one that must be rebound shares the old socket with its successor
// and hands its HTTP/1.1 connections over, so a reload closes no client's
// connection. Sockets are bound with SO_REUSEPORT and steered (see
// reuseSockets), so a binary upgrade's new process can bind the same ports
// while this one drains.
//
// Drain takes the instance out of service: readiness fails at once, the
// listeners serve on for the config's drain delay and then finish what is
// in flight within its grace.
//
// It may import every package of the proxy (balancer, health, discovery,
// proxy, tls, configs) and the internal helpers; only commands import it.
// It lives at the module root, beside the packages it wires, as the design
// names it among them (internal/ holds helpers with no room of their own
// in the design). It is not called runtime, which would shadow the
// standard library's package in every file that needs both.
package instance
