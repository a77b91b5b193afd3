package edgetls

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// A server replaced ten times under load, each time by one that shares
// its socket (Replaces) before the old one shuts down: every client, with
// a new connection (and handshake) per request or kept alive, gets every
// answer. Before Replaces, connections queued on the old socket were
// reset, and before the server answered what it accepted while draining,
// first requests read after Shutdown began got EOF.
func TestReplacedServerDropsNoConnection(t *testing.T) {
	ca := newCA(t, "test CA")
	cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}}, Deps{})
	tc := &tls.Config{RootCAs: ca.pool, ServerName: "site.test"}
	var served []chan error
	serve := func(replaces *Server) *Server {
		t.Helper()
		srv, err := Listen(ServerOptions{Addr: "127.0.0.1:0", Handler: echoHandler, TLS: src, Replaces: replaces})
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		done := make(chan error, 1)
		served = append(served, done)
		go func() { done <- srv.Serve() }()
		return srv
	}
	cur := serve(nil)
	url := "https://" + cur.Addr().String() + "/"

	fresh := clientFor(t, "h1", tc)
	fresh.Transport.(*http.Transport).DisableKeepAlives = true
	clients := []*http.Client{fresh, clientFor(t, "h1", tc), clientFor(t, "h2", tc)}
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var ok atomic.Int64
	var mu sync.Mutex
	var failures []string
	for _, c := range clients {
		for range 2 {
			wg.Go(func() {
				for n := 0; ctx.Err() == nil && n < 5000; n++ {
					resp, err := c.Get(url)
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
					if err != nil {
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
						continue
					}
					ok.Add(1)
				}
			})
		}
	}
	testwait.Until(t, 10*time.Second, "load before the handovers", func() bool { return ok.Load() > 50 })
	for i := range 10 {
		next := serve(cur)
		if next.Addr().String() != cur.Addr().String() {
			t.Fatalf("replacing server on %s, want %s", next.Addr(), cur.Addr())
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := cur.Shutdown(sctx); err != nil {
			t.Errorf("handover %d: Shutdown: %v", i, err)
		}
		cancel()
		cur = next
		before := ok.Load()
		testwait.Until(t, 10*time.Second, "load after a handover", func() bool { return ok.Load() > before+20 })
	}
	stop()
	wg.Wait()
	// A connection a client dialed but never used holds Shutdown for 5s,
	// as net/http counts it; these clients are done.
	for _, c := range clients {
		c.Transport.(*http.Transport).CloseIdleConnections()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cur.Shutdown(sctx); err != nil {
		t.Errorf("last Shutdown: %v", err)
	}
	for _, done := range served {
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed; first: %v", len(failures), int64(len(failures))+ok.Load(), failures[:min(len(failures), 5)])
	}
	t.Logf("%d requests over 10 handovers", ok.Load())
}
