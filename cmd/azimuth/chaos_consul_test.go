package main

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// consulCatchUp is how soon after the agent answers again the pool must
// follow a change made while it was away: the watcher retries at least
// once a second (discovery.Timing's BackoffMax); the rest is the poll and
// the admin calls, under the race detector beside the test's own load on
// two cores (1.5 s was missed by 10 ms and by 0.7 s on such runs).
const consulCatchUp = 2 * time.Second

// A Consul agent that keeps its data restarts, then is cut off for 30s
// (every connection to it closed, new ones refused), all under load:
// backends stay served from the last set, /status says the watcher is out
// of sync, and a change made while the agent was away reaches the pool
// within about a second of its return (after the restart, of the
// services' checks reporting again: a restarted agent has them critical,
// and the pool holds its set against an empty answer).
func TestChaosConsulRestartAndPartition(t *testing.T) {
	agent := consultest.StartWith(t, consultest.Options{Persistent: true})
	f := chaosStartFleet(t)
	chaosRegister(t, agent, f.Backends())
	link := startCutter(t, agent.Addr())
	rig := chaosNewRig(t)
	rig.start(t, chaosSetup{consul: link.addr(), perTry: time.Second}, 6)
	clients := []*http.Client{chaosPlainClient(t)}
	base := chaosBaseline(t, rig.admin)
	load := chaosStartLoadFor(t, clients, rig.url, 90*time.Second)
	load.waitOK(t, "load before the agent stops", 30)

	// A restart with the same data: the set is the same on return.
	agent.Stop()
	testwait.Until(t, 10*time.Second, "the watcher to see the agent gone", func() bool { return !chaosConsulSynced(t, rig.admin) })
	load.waitOK(t, "load while the agent is stopped", 30)
	if n := len(consulPoolBackends(t, rig.admin)); n != 6 {
		t.Errorf("with the agent stopped the pool has %d backends, want the last 6", n)
	}
	agent.Restart()
	// A restarted agent has its TTL checks critical until the services
	// report again: the pool holds its set meanwhile. They report; one
	// of them is gone.
	chaosDeregister(t, agent, f.Backend("zone-c-2"))
	for _, b := range f.Backends() {
		if b != f.Backend("zone-c-2") {
			if err := agent.Client().Agent().PassTTL("ttl-"+b.Name, ""); err != nil {
				t.Fatalf("passing the check of %s: %v", b.Name, err)
			}
		}
	}
	waitFollows(t, rig.admin, f.Backend("zone-c-2"), 5, "after the agent's restart")

	// Cut off for 30s; a change made meanwhile arrives on return.
	link.cut()
	testwait.Until(t, 10*time.Second, "the watcher to see the agent cut off", func() bool { return !chaosConsulSynced(t, rig.admin) })
	chaosDeregister(t, agent, f.Backend("zone-b-2"))
	cutFor := time.NewTimer(30 * time.Second)
	defer cutFor.Stop()
	for waiting := true; waiting; {
		select {
		case <-cutFor.C:
			waiting = false
		case <-time.After(2 * time.Second): // while cut off: a check every 2s
			if n := len(consulPoolBackends(t, rig.admin)); n != 5 {
				t.Fatalf("with the agent cut off the pool has %d backends, want the last 5", n)
			}
			if chaosConsulSynced(t, rig.admin) {
				t.Fatal("/status says the watcher is in sync while the agent is cut off")
			}
		}
	}
	load.waitOK(t, "load while the agent is cut off", 300)
	link.restore()
	waitFollows(t, rig.admin, f.Backend("zone-b-2"), 4, "after the agent was cut off for 30s")

	load.waitOK(t, "load after the agent came back", 100)
	chaosCheck(t, load, f, chaosExpect{everyRequest: true})
	chaosCloseIdle(clients)
	chaosCheckLeaks(t, rig.admin, base)
}

// waitFollows waits until the pool has want backends without gone, in
// sync, and fails if that took longer than consulCatchUp.
func waitFollows(t *testing.T, admin string, gone *fleet.Backend, want int, when string) {
	t.Helper()
	start := time.Now()
	testwait.Until(t, 10*time.Second, "the pool to follow the agent "+when, func() bool {
		bs := consulPoolBackends(t, admin)
		_, still := bs[gone.Addr]
		return chaosConsulSynced(t, admin) && len(bs) == want && !still
	})
	if took := time.Since(start); took > consulCatchUp {
		t.Errorf("the pool followed the agent %v %s, want within %v", took.Round(time.Millisecond), when, consulCatchUp)
	} else {
		t.Logf("the pool followed the agent %v %s", took.Round(time.Millisecond), when)
	}
}

// chaosDeregister takes b out of the agent's catalog.
func chaosDeregister(t *testing.T, agent *consultest.Agent, b *fleet.Backend) {
	t.Helper()
	if err := agent.Client().Agent().ServiceDeregister(b.Name); err != nil {
		t.Fatalf("deregistering %s: %v", b.Name, err)
	}
}

// cutter is a TCP forwarder on loopback in front of a Consul agent that
// can cut the link: every connection through it closed and new ones
// refused, until restore.
type cutter struct {
	target string
	bound  string

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startCutter(t *testing.T, target string) *cutter {
	t.Helper()
	c := &cutter{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.bound = ln.Addr().String()
	c.serve(ln)
	t.Cleanup(func() {
		c.cut()
		c.wg.Wait()
	})
	return c
}

func (c *cutter) addr() string { return c.bound }

// serve accepts on ln and forwards each connection, until ln closes.
func (c *cutter) serve(ln net.Listener) {
	c.ln = ln
	c.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", c.target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns[in], c.conns[out] = struct{}{}, struct{}{}
			c.mu.Unlock()
			c.wg.Go(func() { c.pipe(in, out) })
			c.wg.Go(func() { c.pipe(out, in) })
		}
	})
}

// pipe copies src to dst, then closes both.
func (c *cutter) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	c.mu.Lock()
	delete(c.conns, src)
	delete(c.conns, dst)
	c.mu.Unlock()
	src.Close()
	dst.Close()
}

// cut closes the listener and every connection: the agent is unreachable.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for conn := range c.conns {
		conn.Close()
	}
}

// restore listens again on the same address.
func (c *cutter) restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	ln, err := net.Listen("tcp", c.bound)
	if err != nil {
		panic("restoring the link to the consul agent: " + err.Error())
	}
	c.serve(ln)
}
