package edgetls

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/quic-go/quic-go/http3"
)

func TestTicketKeyRotationKeepsResumption(t *testing.T) {
	for _, version := range []struct {
		name string
		v    uint16
		h3   bool
	}{{"TLS 1.3", tls.VersionTLS13, false}, {"TLS 1.2", tls.VersionTLS12, false}, {"HTTP/3", tls.VersionTLS13, true}} {
		t.Run(version.name, func(t *testing.T) {
			ca := newCA(t, "test CA")
			cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}, TicketKeyRotation: 12 * time.Hour, TicketKeysKept: 2},
				Deps{Clock: clock})
			srv := startServer(t, "127.0.0.1:0", src, true, echoHandler)
			url := "https://" + srv.Addr().String() + "/"
			testwait.Until(t, 5*time.Second, "Run to start its tickers", func() bool { return clock.liveTickers() == 2 })

			// get makes one request on a new connection with cache and
			// reports whether the handshake resumed.
			get := func(cache tls.ClientSessionCache) bool {
				t.Helper()
				cfg := &tls.Config{RootCAs: ca.pool, ServerName: "site.test", ClientSessionCache: cache, MaxVersion: version.v}
				var rt http.RoundTripper
				if version.h3 {
					tr := &http3.Transport{TLSClientConfig: cfg}
					defer tr.Close()
					rt = tr
				} else {
					tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
					defer tr.CloseIdleConnections()
					rt = tr
				}
				resp, err := (&http.Client{Transport: rt, Timeout: 5 * time.Second}).Get(url)
				if err != nil {
					t.Fatalf("GET: %v", err)
				}
				resp.Body.Close()
				if resp.TLS.Version != version.v {
					t.Fatalf("negotiated %x, want %x", resp.TLS.Version, version.v)
				}
				if got := resp.ProtoMajor == 3; got != version.h3 {
					t.Fatalf("spoke %s", resp.Proto)
				}
				return resp.TLS.DidResume
			}
			rotate := func() {
				t.Helper()
				want := src.tickets.generation() + 1
				clock.Advance(12 * time.Hour)
				testwait.Until(t, 5*time.Second, "the ticket key to rotate", func() bool { return src.tickets.generation() == want })
			}

			live := tls.NewLRUClientSessionCache(4)  // used on every step
			stale := tls.NewLRUClientSessionCache(4) // holds a ticket from before all rotations
			if get(live) {
				t.Fatal("first handshake resumed")
			}
			if !get(live) {
				t.Fatal("second handshake did not resume")
			}
			if get(stale) {
				t.Fatal("first handshake of the stale client resumed")
			}

			rotate()
			if !get(live) {
				t.Fatal("no resumption across one rotation")
			}
			// Two more rotations drop the first key (one current + two kept).
			rotate()
			rotate()
			if get(stale) {
				t.Fatal("a ticket from a dropped key still resumed: keys are not rotating")
			}
			if !get(live) {
				t.Fatal("a ticket from a kept key did not resume")
			}
		})
	}
}
