package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/quic-go/quic-go/http3"
)

// On a TLS listener with HTTP/3, requests in flight over HTTP/1.1, HTTP/2
// and HTTP/3 all finish when the process drains, and it exits 0.
func TestDrainTLSListenerFinishesEveryProtocol(t *testing.T) {
	const slow = 300 * time.Millisecond
	be := reloadStartBackend(t, "127.0.1.1", slow)
	dir := t.TempDir()
	ca := tlsproxyNewCA(t, "edge CA")
	tlsproxyWriteLeaf(t, ca, dir)
	path := filepath.Join(dir, "azimuth.yaml")
	reloadWrite(t, path, fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
shutdown: { drain_delay: 200ms, grace: 5s }
listeners:
  - name: https
    address: 127.0.0.2:0
    tls:
      certificates: [ { cert_file: a.pem, key_file: a-key.pem } ]
      http3: true
    routes: [ { pool: web } ]
pools:
  - name: web
    backends: [ { address: %s, zone: zone-a } ]
`, be.addr))
	p, admin := reloadStart(t, path)
	url := "https://" + reloadListenerAddr(t, admin, "https") + "/"

	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "a.test"}}
	defer h3.Close()
	clients := map[string]*http.Client{
		"HTTP/1.1": tlsproxyClient(t, ca, "a.test", false, true),
		"HTTP/2.0": tlsproxyClient(t, ca, "a.test", true, true),
		"HTTP/3.0": {Transport: h3, Timeout: 10 * time.Second},
	}
	const each = 3
	var (
		mu      sync.Mutex
		results []string
		wg      sync.WaitGroup
	)
	for proto, c := range clients {
		for range each {
			wg.Go(func() {
				r := "ok"
				resp, err := tlsproxyGet(c, url)
				switch {
				case err != nil:
					r = err.Error()
				case resp.StatusCode != http.StatusOK || resp.Proto != proto:
					r = fmt.Sprintf("%d over %s", resp.StatusCode, resp.Proto)
				}
				mu.Lock()
				results = append(results, proto+": "+r)
				mu.Unlock()
			})
		}
	}
	testwait.Until(t, 5*time.Second, "requests in flight at the backend", func() bool {
		return be.started.Load() == int64(len(clients)*each)
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, r := range results {
		if r[len(r)-2:] != "ok" {
			t.Errorf("in-flight request: %s", r)
		}
	}
	if len(results) != len(clients)*each {
		t.Errorf("%d results, want %d", len(results), len(clients)*each)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
}
