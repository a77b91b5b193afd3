package main

import (
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
	"github.com/hashicorp/consul/api"
)

// Faults of what runs around the proxy: its config file, its certificates,
// its Consul agent, its operator's signals. No backend misbehaves, so no
// request of any kind may fail.

// A config file overwritten with a truncated file, invalid YAML and
// nothing at all: each write is rejected, logged and counted, the running
// config keeps serving unchanged, and the good file is taken back.
func TestChaosCorruptConfigWrite(t *testing.T) {
	f := chaosStartFleet(t)
	rig := chaosNewRig(t)
	setup := chaosSetup{backends: chaosTargets(f.Backends()), perTry: time.Second}
	good := setup.yaml()
	rig.start(t, setup, 6)
	before := reloadGetStatus(t, rig.admin)
	// Cut inside the first backend's flow mapping: every prefix of this
	// is invalid too (a pool needs backends), so no partial read of the
	// write can be a valid config.
	cut := strings.Index(good, "backends:\n") + len("backends:\n      - { address: 127.0")
	bad := []struct{ name, content string }{
		{"truncated", good[:cut]},
		{"invalid YAML", "listeners:\n  - name: web\n    address: [127.0.0.1:0\npools: {\n"},
		{"empty", ""},
	}
	play := chaosPlay{
		rig: rig, fleet: f, clients: []*http.Client{chaosPlainClient(t)},
		fault: func(t *testing.T) {
			for _, b := range bad {
				failures := reloadMetric(t, rig.admin, reloadFailed)
				reloadWrite(t, rig.path, b.content)
				testwait.Until(t, 10*time.Second, b.name+" file rejected", func() bool {
					return reloadMetric(t, rig.admin, reloadFailed) > failures
				})
				st := reloadGetStatus(t, rig.admin)
				if st.Config.Hash != before.Config.Hash || st.Config.LastReloadOK || !slices.Equal(reloadPoolBackends(st, "web"), reloadPoolBackends(before, "web")) ||
					!slices.Equal(st.Listeners, before.Listeners) {
					t.Errorf("after the %s file /status shows config %+v, backends %v, listeners %v; want config %s unchanged and the failure shown",
						b.name, st.Config, reloadPoolBackends(st, "web"), st.Listeners, before.Config.Hash)
				}
				if v := reloadMetric(t, rig.admin, reloadLastOK); v != 0 {
					t.Errorf("after the %s file %s = %v, want 0", b.name, reloadLastOK, v)
				}
			}
			rig.p.waitLog(t, "config reload rejected", func(l map[string]any) bool { return l["file"] == rig.path })
		},
		heal: func(t *testing.T) {
			ok := reloadMetric(t, rig.admin, reloadOK)
			reloadWrite(t, rig.path, good)
			testwait.Until(t, 10*time.Second, "the good file taken back", func() bool {
				return reloadMetric(t, rig.admin, reloadOK) > ok && reloadMetric(t, rig.admin, reloadLastOK) == 1
			})
		},
		expect: chaosExpect{everyRequest: true},
	}
	play.run(t)
	t.Logf("reloads: %v rejected, %v applied", reloadMetric(t, rig.admin, reloadFailed), reloadMetric(t, rig.admin, reloadOK))
}

// Twenty SIGHUPs in a row, each after the file is replaced by one that
// changes a weight and adds or removes a backend of the local zone, and
// in the rebinding cases also binds the listener, plain or TLS, anew (a
// new idle_timeout on the same port): the proxy applies them as they come
// (signals arriving during a reload coalesce), ends on the last file, and
// no request fails, not even one in flight on a removed backend, on a
// connection the kernel queued on the replaced listener, or a POST on a
// kept-alive connection of the replaced listener.
func TestChaosSIGHUPBurst(t *testing.T) {
	tests := []struct {
		name        string
		rebind, tls bool
	}{
		{"pools change", false, false},
		{"listener rebinds", true, false},
		{"TLS listener rebinds", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := chaosStartFleet(t)
			listen := fmt.Sprintf("127.0.0.1:%d", reloadFreePort(t))
			variant := func(i int) chaosSetup {
				s := chaosSetup{perTry: time.Second, listen: listen, tls: tt.tls}
				if tt.rebind {
					s.idle = time.Duration(30+i) * time.Second
				}
				for _, tg := range chaosTargets(f.Backends()) {
					switch {
					case tg.addr == f.Backend("zone-a-1").Addr:
						tg.weight = 1 + i
					case tg.addr == f.Backend("zone-a-2").Addr && i%2 == 1:
						continue
					}
					s.backends = append(s.backends, tg)
				}
				return s
			}
			const burst = 20
			rig := chaosNewRig(t)
			ca := tlsproxyNewCA(t, "chaos CA")
			if tt.tls {
				tlsproxyWriteLeaf(t, ca, rig.dir)
			}
			rig.start(t, variant(0), 6)
			// With a rebinding, a new connection per request meets the
			// listener's accept queue at every reload.
			clients := []*http.Client{chaosPlainClient(t)}
			switch {
			case tt.tls:
				clients = []*http.Client{
					tlsproxyClient(t, ca, "a.test", false, true),
					tlsproxyClient(t, ca, "a.test", true, true),
					tlsproxyClient(t, ca, "a.test", false, false),
				}
			case tt.rebind:
				tr := &http.Transport{DisableKeepAlives: true}
				clients = append(clients, &http.Client{Transport: tr, Timeout: 5 * time.Second})
			}
			play := chaosPlay{
				rig: rig, fleet: f, clients: clients,
				fault: func(t *testing.T) {
					for i := 1; i <= burst; i++ {
						// Renamed into place, as deploy tools write: a
						// file written in place can be read half-written,
						// and that read is rightly rejected
						// (TestChaosCorruptConfigWrite).
						tlsproxyWriteFile(t, rig.dir, "azimuth.yaml", []byte(variant(i).yaml()))
						if err := rig.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
							t.Fatal(err)
						}
					}
				},
				heal: func(t *testing.T) {
					last := f.Backend("zone-a-1").Addr
					testwait.Until(t, 10*time.Second, "the last file applied", func() bool {
						st := reloadGetStatus(t, rig.admin)
						for _, p := range st.Pools {
							for _, b := range p.Backends {
								if b.Address == last {
									return b.Weight == 1+burst
								}
							}
						}
						return false
					})
					rig.waitUp(t, 6)
				},
				// A rebinding moves the old server's keep-alive
				// connections to the new one: not even a POST without a
				// key is lost.
				expect: chaosExpect{everyRequest: true},
			}
			play.run(t)
			if v := reloadMetric(t, rig.admin, reloadFailed); v != 0 {
				t.Errorf("%s = %v, want 0", reloadFailed, v)
			}
			if got := reloadListenerAddr(t, rig.admin, "web"); got != listen {
				t.Errorf("listener on %s after the burst, want %s", got, listen)
			}
			t.Logf("%d SIGHUPs: %v reloads applied", burst, reloadMetric(t, rig.admin, reloadOK)-1)
		})
	}
}

// Certificate files replaced by rename while HTTP/1.1 and HTTP/2 clients
// run, over kept-alive connections and over a new handshake per request:
// new handshakes get the new certificate and no request fails.
func TestChaosCertificateRotation(t *testing.T) {
	f := chaosStartFleet(t)
	rig := chaosNewRig(t)
	ca := tlsproxyNewCA(t, "chaos CA")
	tlsproxyWriteLeaf(t, ca, rig.dir)
	rig.start(t, chaosSetup{backends: chaosTargets(f.Backends()), tls: true, perTry: time.Second}, 6)
	served := func(t *testing.T, h2 bool) *big.Int {
		resp, err := tlsproxyGet(tlsproxyClient(t, ca, "a.test", h2, false), rig.url+"/serial")
		if err != nil {
			t.Fatalf("new handshake (h2 %v): %v", h2, err)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber
	}
	old := served(t, false)
	next := ca.issue(t, pkix.Name{CommonName: "a.test"}, false, "a.test")
	play := chaosPlay{
		rig: rig, fleet: f,
		clients: []*http.Client{
			tlsproxyClient(t, ca, "a.test", false, true),
			tlsproxyClient(t, ca, "a.test", true, true),
			tlsproxyClient(t, ca, "a.test", false, false),
		},
		fault: func(t *testing.T) {
			tlsproxyWriteFile(t, rig.dir, "a-key.pem", next.keyPEM)
			tlsproxyWriteFile(t, rig.dir, "a.pem", next.certPEM)
		},
		heal: func(t *testing.T) {
			for _, h2 := range []bool{false, true} {
				testwait.Until(t, 10*time.Second, "new handshakes get the new certificate", func() bool {
					return served(t, h2).Cmp(next.serial) == 0
				})
			}
		},
		expect: chaosExpect{everyRequest: true},
	}
	play.run(t)
	if next.serial.Cmp(old) == 0 {
		t.Fatal("the new certificate has the old one's serial")
	}
	rig.p.waitLog(t, "certificate reloaded", func(l map[string]any) bool { return l["serial"] == next.serial.String() })
}

// chaosRegister registers the backends as instances of the Consul service
// "chaos", each with its zone in metadata and a passing check.
func chaosRegister(t *testing.T, agent *consultest.Agent, bs []*fleet.Backend) {
	t.Helper()
	for _, b := range bs {
		host, port, _ := net.SplitHostPort(b.Addr)
		p, _ := strconv.Atoi(port)
		err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: b.Name, Name: "chaos", Address: host, Port: p, Meta: map[string]string{"az": b.Zone},
			Check: &api.AgentServiceCheck{CheckID: "ttl-" + b.Name, TTL: "10m", Status: api.HealthPassing},
		})
		if err != nil {
			t.Fatalf("registering %s: %v", b.Name, err)
		}
	}
}

// chaosConsulSynced reports whether the pool's watcher is in sync with
// the agent.
func chaosConsulSynced(t *testing.T, admin string) bool {
	synced, _ := chaosConsulState(t, admin)
	return synced
}

// chaosConsulState reads whether the pool's Consul watcher is in sync and
// whether it holds its last set against an empty answer.
func chaosConsulState(t *testing.T, admin string) (synced, holding bool) {
	var st struct {
		Pools []struct {
			Consul struct {
				Synced  bool `json:"synced"`
				Holding bool `json:"holding"`
			} `json:"consul"`
		} `json:"pools"`
	}
	consulGetJSON(t, "http://"+admin+"/status", &st)
	if len(st.Pools) != 1 {
		return false, false
	}
	return st.Pools[0].Consul.Synced, st.Pools[0].Consul.Holding
}

// The Consul agent feeding the pool stops under load: the proxy keeps
// serving the last backends it knew. The agent comes back empty (a -dev
// agent keeps nothing across a restart, as a catalog wiped by mistake):
// the proxy holds its last set and the load goes on. Then the agent is
// given a changed set, and the proxy follows it. One client loop runs
// through all of it.
func TestChaosConsulAgentRestart(t *testing.T) {
	agent := consultest.Start(t)
	f := chaosStartFleet(t)
	chaosRegister(t, agent, f.Backends())
	rig := chaosNewRig(t)
	rig.start(t, chaosSetup{consul: agent.Addr(), perTry: time.Second}, 6)
	clients := []*http.Client{chaosPlainClient(t)}
	base := chaosBaseline(t, rig.admin)

	load := chaosStartLoad(t, clients, rig.url)
	load.waitOK(t, "load before the agent stops", 30)
	agent.Stop()
	testwait.Until(t, 10*time.Second, "the watcher to see the agent gone", func() bool { return !chaosConsulSynced(t, rig.admin) })
	time.Sleep(chaosPhase) // the agent stays away under load
	if n := len(consulPoolBackends(t, rig.admin)); n != 6 {
		t.Errorf("with the agent away the pool has %d backends, want the last 6", n)
	}

	agent.Restart()
	testwait.Until(t, 10*time.Second, "the watcher to hold its set against the empty agent", func() bool {
		synced, holding := chaosConsulState(t, rig.admin)
		return synced && holding
	})
	if n := len(consulPoolBackends(t, rig.admin)); n != 6 {
		t.Errorf("against the empty agent the pool has %d backends, want the last 6", n)
	}
	load.waitOK(t, "load against the empty agent", 30)
	gone := f.Backend("zone-a-2")
	var kept []*fleet.Backend
	for _, b := range f.Backends() {
		if b != gone {
			kept = append(kept, b)
		}
	}
	chaosRegister(t, agent, kept)
	testwait.Until(t, 10*time.Second, "the pool to follow the agent after its restart", func() bool {
		_, still := consulPoolBackends(t, rig.admin)[gone.Addr]
		return chaosConsulSynced(t, rig.admin) && len(consulPoolBackends(t, rig.admin)) == 5 && !still
	})
	rig.waitUp(t, 5)
	// Requests picked before the set changed may still be on their way.
	testwait.Until(t, 10*time.Second, "the removed backend to retire", func() bool {
		var st struct {
			Pools []struct {
				Retiring []string `json:"retiring"`
			} `json:"pools"`
		}
		consulGetJSON(t, "http://"+rig.admin+"/status", &st)
		return len(st.Pools) == 1 && len(st.Pools[0].Retiring) == 0
	})
	sentToGone := gone.Requests()
	load.waitOK(t, "load after the agent came back", 300)
	chaosCheck(t, load, f, chaosExpect{everyRequest: true})
	if n := gone.Requests() - sentToGone; n != 0 {
		t.Errorf("the deregistered backend got %d requests", n)
	}
	chaosCloseIdle(clients)
	chaosCheckLeaks(t, rig.admin, base)
}
