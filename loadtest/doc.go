// Package loadtest drives an HTTP service the way real clients do and
// measures what they would see. It never imports the proxy: it speaks to
// azimuth over the network and starts it as a separate process, so what it
// measures is what an operator's users would measure. Of the project it
// imports only internal/h1wire, the HTTP/1.1 wire pieces its client shares
// with the proxy's.
//
// The generator runs open loop (a fixed arrival rate, latency measured from
// each request's intended send time so a stall cannot hide behind a slowed
// client, as wrk2 does) or closed loop (a fixed number of workers, each
// sending its next request when the previous one ends). Runs are always
// bounded by a duration or a request count.
//
// A run sends one method and body, or a mix of them (Options.Mix) in exact
// proportions and a fixed order, each request with a unique ID so the
// backends can tell a request delivered twice; results are kept per method.
package loadtest
