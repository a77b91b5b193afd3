package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// A binary upgrade on a TLS listener with HTTP/3: clients over HTTP/1.1,
// HTTP/2 and HTTP/3 see no failure while the second process takes over.
func TestUpgradeTLSListenerEveryProtocol(t *testing.T) {
	be := reloadStartBackend(t, "127.0.1.1", 0)
	dir := t.TempDir()
	ca := tlsproxyNewCA(t, "edge CA")
	tlsproxyWriteLeaf(t, ca, dir)
	listen := fmt.Sprintf("127.0.0.2:%d", reloadFreePort(t))
	cfg := reloadTLSConfig(listen, be, 30)
	path1, path2 := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml")
	reloadWrite(t, path1, cfg)
	reloadWrite(t, path2, cfg)
	old, _ := reloadStart(t, path1)

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
		tr := reloadStartTraffic(t, c.client, "https://"+listen+"/", 2)
		testwait.Until(t, 5*time.Second, c.name+" traffic to the old process", func() bool { return tr.ok.Load() > 10 })
		loops = append(loops, tr)
	}
	next, nextAdmin := reloadStart(t, path2)
	testwait.Until(t, 5*time.Second, "the new process is ready", func() bool {
		return drainReadyz(nextAdmin) == http.StatusOK
	})
	if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := old.exitCode(t); code != 0 {
		t.Fatalf("old process exit %d", code)
	}
	for _, tr := range loops {
		before := tr.ok.Load()
		testwait.Until(t, 10*time.Second, "traffic after the old process exits", func() bool { return tr.ok.Load() > before+10 })
	}
	for i, tr := range loops {
		t.Run(clients[i].name, func(t *testing.T) { tr.check(t, 20) })
	}
	t.Logf("HTTP/3 requests sent again after H3_REQUEST_REJECTED: %d", rejected.Load())
	next.cmd.Process.Signal(syscall.SIGTERM)
	if code := next.exitCode(t); code != 0 {
		t.Fatalf("new process exit %d", code)
	}
}
