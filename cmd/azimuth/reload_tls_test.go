package main

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

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
	leaf := ca.issue(t, pkix.Name{CommonName: "a.test"}, false, "a.test")
	tlsproxyWriteFile(t, dir, "a.pem", leaf.certPEM)
	tlsproxyWriteFile(t, dir, "a-key.pem", leaf.keyPEM)
	path := filepath.Join(dir, "azimuth.yaml")
	listen := fmt.Sprintf("127.0.0.2:%d", reloadFreePort(t))
	reloadWrite(t, path, reloadTLSConfig(listen, be, 30))
	_, admin := reloadStart(t, path)

	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "a.test"}}
	t.Cleanup(func() { h3.Close() })
	clients := []struct {
		name   string
		client *http.Client
	}{
		{"HTTP/1.1", tlsproxyClient(t, ca, "a.test", false, true)},
		{"HTTP/2", tlsproxyClient(t, ca, "a.test", true, true)},
		{"HTTP/3", &http.Client{Transport: h3, Timeout: 10 * time.Second}},
	}
	var loops []*reloadTraffic
	for _, c := range clients {
		loops = append(loops, reloadStartTraffic(t, c.client, "https://"+listen+"/", 2))
	}
	const edits = 3
	for i := 1; i <= edits; i++ {
		reloadWrite(t, path, reloadTLSConfig(listen, be, 30+i))
		reloadEventually(t, fmt.Sprintf("edit %d applied", i), 10*time.Second, func() bool {
			return reloadMetric(t, admin, reloadOK) == float64(i+1)
		})
		for _, tr := range loops {
			before := tr.ok.Load()
			reloadEventually(t, "traffic after the edit", 10*time.Second, func() bool { return tr.ok.Load() > before+4 })
		}
	}
	for i, tr := range loops {
		t.Run(clients[i].name, func(t *testing.T) { tr.check(t, 10) })
	}
}
