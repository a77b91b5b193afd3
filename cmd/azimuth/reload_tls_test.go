package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/quic-go/quic-go/http3"
)

// reloadTLSConfig is a TLS listener with HTTP/3 on listen, in front of be,
// with an idle timeout that the test changes to force a new socket.
func reloadTLSConfig(listen string, be *reloadBackend, idle int) string {
	return fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
shutdown: { drain_delay: 100ms, grace: 5s }
listeners:
  - name: https
    address: %s
    tls:
      certificates: [ { cert_file: a.pem, key_file: a-key.pem } ]
      http3: true
    limits: { idle_timeout: %ds }
    routes: [ { pool: web } ]
pools:
  - name: web
    backends: [ { address: %s, zone: zone-a } ]
`, listen, idle, be.addr)
}

// A TLS listener whose binding changes on the same address: clients over
// every protocol keep going while the new socket replaces the old one.
func TestReloadTLSListenerBindingChange(t *testing.T) {
	be := reloadStartBackend(t, "127.0.1.1", 0)
	dir := t.TempDir()
	ca := tlsproxyNewCA(t, "edge CA")
	tlsproxyWriteLeaf(t, ca, dir)
	path := filepath.Join(dir, "azimuth.yaml")
	listen := fmt.Sprintf("127.0.0.2:%d", reloadFreePort(t))
	reloadWrite(t, path, reloadTLSConfig(listen, be, 30))
	_, admin := reloadStart(t, path)

	h3, rejected := reloadH3Client(t, ca, "a.test")
	clients := []struct {
		name   string
		client *http.Client
	}{
		{"HTTP/1.1", tlsproxyClient(t, ca, "a.test", false, true)},
		{"HTTP/2", tlsproxyClient(t, ca, "a.test", true, true)},
		{"HTTP/3", h3},
	}
	var loops []*reloadTraffic
	for _, c := range clients {
		loops = append(loops, reloadStartTraffic(t, c.client, "https://"+listen+"/", 2))
	}
	const edits = 3
	for i := 1; i <= edits; i++ {
		reloadWrite(t, path, reloadTLSConfig(listen, be, 30+i))
		testwait.Until(t, 10*time.Second, fmt.Sprintf("edit %d applied", i), func() bool {
			return reloadMetric(t, admin, reloadOK) == float64(i+1)
		})
		for _, tr := range loops {
			before := tr.ok.Load()
			testwait.Until(t, 10*time.Second, "traffic after the edit", func() bool { return tr.ok.Load() > before+4 })
		}
	}
	for i, tr := range loops {
		t.Run(clients[i].name, func(t *testing.T) { tr.check(t, 10) })
	}
	t.Logf("HTTP/3 requests sent again after H3_REQUEST_REJECTED: %d", rejected.Load())
}

// reloadH3Client is an HTTP/3 client that, like browsers, sends a request
// again when the server answered H3_REQUEST_REJECTED: RFC 9114 section 4.1.1
// guarantees such a request was not processed. A server that is shutting
// down rejects requests that race its GOAWAY on a connection it just
// accepted; quic-go's transport retries that once on a new connection, and
// during a rebinding that one can race a GOAWAY again. Every other error
// fails the request.
func reloadH3Client(t *testing.T, ca *tlsproxyCA, sni string) (*http.Client, *atomic.Int64) {
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: sni}}
	t.Cleanup(func() { h3.Close() })
	rejected := new(atomic.Int64)
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		for range 3 {
			resp, err := h3.RoundTrip(r)
			var h3err *http3.Error
			if !errors.As(err, &h3err) || h3err.ErrorCode != http3.ErrCodeRequestRejected {
				return resp, err
			}
			rejected.Add(1)
		}
		return h3.RoundTrip(r)
	})
	return &http.Client{Transport: rt, Timeout: 10 * time.Second}, rejected
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
