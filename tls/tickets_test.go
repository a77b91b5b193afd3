package edgetls

import (
	"strings"

	"crypto/tls"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

func TestTicketKeyRotationKeepsResumption(t *testing.T) {
	for _, version := range []struct {
		name string
		v    uint16
	}{{"TLS 1.3", tls.VersionTLS13}, {"TLS 1.2", tls.VersionTLS12}} {
		t.Run(version.name, func(t *testing.T) {
			ca := newCA(t, "test CA")
			cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}, TicketKeyRotation: 12 * time.Hour, TicketKeysKept: 2},
				Deps{Clock: clock})
			srv := startServer(t, "127.0.0.1:0", src, false, echoHandler)
			url := "https://" + srv.Addr().String() + "/"
			waitFor(t, "Run to start its tickers", 5*time.Second, func() bool { return clock.liveTickers() == 2 })

			// get makes one request on a new connection with cache and
			// reports whether the handshake resumed.
			get := func(cache tls.ClientSessionCache) bool {
				t.Helper()
				tr := &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "site.test", ClientSessionCache: cache,
						MaxVersion: version.v},
					DisableKeepAlives: true,
				}
				defer tr.CloseIdleConnections()
				resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
				if err != nil {
					t.Fatalf("GET: %v", err)
				}
				resp.Body.Close()
				if resp.TLS.Version != version.v {
					t.Fatalf("negotiated %x, want %x", resp.TLS.Version, version.v)
				}
				return resp.TLS.DidResume
			}
			rotate := func() {
				t.Helper()
				want := src.tickets.generation() + 1
				clock.Advance(12 * time.Hour)
				waitFor(t, "the ticket key to rotate", 5*time.Second, func() bool { return src.tickets.generation() == want })
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

func TestExpiryGaugeAndWarnings(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	clock := &fakeClock{now: now}
	soon := ca.issue(t, leafSpec{dns: []string{"soon.test"}, notAfter: now.Add(10 * 24 * time.Hour)})
	later := ca.issue(t, leafSpec{cn: "later by cn", notAfter: now.Add(60 * 24 * time.Hour)})
	renewed := ca.issue(t, leafSpec{dns: []string{"renewed.test", "soon.test"}, notAfter: now.Add(90 * 24 * time.Hour)})
	cfSoon := writePair(t, dir, "soon", soon)
	cfLater := writePair(t, dir, "later", later)

	reg := prometheus.NewPedanticRegistry()
	logs := &logRecorder{}
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cfSoon, cfLater}},
		Deps{Registerer: reg, Logger: slog.New(logs), Clock: clock})
	waitFor(t, "Run to start its tickers", 5*time.Second, func() bool { return clock.liveTickers() == 2 })

	expect := func(body string) {
		t.Helper()
		const head = "# HELP azimuth_tls_certificate_expiry_seconds Seconds until the served certificate's NotAfter; name is its first DNS SAN or CN.\n# TYPE azimuth_tls_certificate_expiry_seconds gauge\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(head+body), "azimuth_tls_certificate_expiry_seconds"); err != nil {
			t.Fatal(err)
		}
	}
	expect(`azimuth_tls_certificate_expiry_seconds{listener="https",name="later by cn"} 5.184e+06
azimuth_tls_certificate_expiry_seconds{listener="https",name="soon.test"} 864000
`)
	if n := logs.count(slog.LevelWarn, "certificate expires soon"); n != 1 {
		t.Fatalf("%d expiry warnings at load, want 1 (soon.test only)", n)
	}

	// A day later: the gauge counts down and the daily check warns again.
	clock.Advance(24 * time.Hour)
	waitFor(t, "the daily expiry warning", 5*time.Second, func() bool {
		return logs.count(slog.LevelWarn, "certificate expires soon") == 2
	})
	expect(`azimuth_tls_certificate_expiry_seconds{listener="https",name="later by cn"} 5.0976e+06
azimuth_tls_certificate_expiry_seconds{listener="https",name="soon.test"} 777600
`)

	// The renewed certificate has another first name: the old label goes.
	renameOver(t, cfSoon.KeyFile, renewed.keyPEM)
	renameOver(t, cfSoon.CertFile, renewed.certPEM)
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	expect(`azimuth_tls_certificate_expiry_seconds{listener="https",name="later by cn"} 5.0976e+06
azimuth_tls_certificate_expiry_seconds{listener="https",name="renewed.test"} 7.6896e+06
`)

	// A second listener registers beside the first on the same registry.
	if _, err := New(Options{Listener: "other", Certs: []CertFile{cfLater}}, Deps{Registerer: reg, Logger: slog.New(logs), Clock: clock}); err != nil {
		t.Fatalf("second listener on one registry: %v", err)
	}
	if _, err := New(Options{Listener: "other", Certs: []CertFile{cfLater}}, Deps{Registerer: reg, Logger: slog.New(logs), Clock: clock}); err == nil {
		t.Fatal("a duplicate listener name registered twice")
	}
}
