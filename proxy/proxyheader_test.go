package proxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/proxyproto"
)

// With send_proxy_protocol, every backend connection begins with a header
// naming the client, and carries only that client's requests: two
// clients' requests never share a connection, one client's reuse theirs.
func TestSendProxyProtocolPerClient(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.1.71:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := proxyproto.NewListener(inner, func(netip.Addr) bool { return true }, 5*time.Second, nil)
	var mu sync.Mutex
	conns := map[string]map[string]int{} // PROXY client -> X-Forwarded-For seen -> requests
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if conns[r.RemoteAddr] == nil {
			conns[r.RemoteAddr] = map[string]int{}
		}
		conns[r.RemoteAddr][r.Header.Get("X-Forwarded-For")]++
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	bp := balancer.NewPool("app", balancer.Options{})
	bp.Update([]balancer.Spec{{Address: inner.Addr().String(), Weight: 1}})
	px := startProxy(t, PoolConfig{
		Name: "app", Balancer: bp,
		Transport: NewTransport(TransportOptions{Connect: time.Second, SendProxyProtocol: 2}),
		Timeouts:  Timeouts{Connect: time.Second, Request: 3 * time.Second},
		Retry:     RetryPolicy{Attempts: 1},
	})
	for _, ip := range []string{"127.0.9.1", "127.0.9.2"} {
		c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}}
		for range 3 {
			resp, err := c.Get(px.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		c.CloseIdleConnections()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 2 {
		t.Fatalf("backend connections by PROXY client: %v, want one per client", conns)
	}
	for client, seen := range conns {
		ip, _, _ := strings.Cut(client, ":")
		if len(seen) != 1 || seen[ip] != 3 {
			t.Errorf("connection from PROXY client %s carried %v, want 3 requests of that client only", client, seen)
		}
	}
}
