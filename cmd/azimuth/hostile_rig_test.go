package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostileStreamLimit is the listener's h2_max_concurrent_streams and
// h3_max_streams in the hostile tests: small, so a breach shows.
const hostileStreamLimit = 8

// hostileFleet is a running azimuth with one TLS listener (HTTP/1.1, HTTP/2
// and HTTP/3 on one port, certificate for a.test) in front of two backends
// that speak raw HTTP/1.1 on loopback: rec records every request it gets,
// and hang holds every request until the proxy gives up on it.
type hostileFleet struct {
	ca    *tlsproxyCA
	p     *process
	admin string
	addr  string // the TLS listener, TCP and UDP
	rec   *hostileRecorder
	hang  *hostileHanger
}

// hostileStart runs the fleet. Requests under /hang/ go to the hanging
// backend, everything else to the recorder.
func hostileStart(t *testing.T) *hostileFleet {
	t.Helper()
	dir := t.TempDir()
	f := &hostileFleet{ca: tlsproxyNewCA(t, "edge CA"), rec: hostileStartRecorder(t), hang: hostileStartHanger(t)}
	tlsproxyWriteLeaf(t, f.ca, dir)
	path := filepath.Join(dir, "azimuth.yaml")
	reloadWrite(t, path, fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
shutdown: { drain_delay: 50ms, grace: 2s }
listeners:
  - name: https
    address: 127.0.0.2:0
    tls:
      certificates: [ { cert_file: a.pem, key_file: a-key.pem } ]
      http3: true
    limits: { h2_max_concurrent_streams: %d, h3_max_streams: %d, idle_timeout: 2s }
    routes:
      - { path_prefix: /hang/, pool: hang }
      - pool: rec
pools:
  - name: rec
    backends: [ { address: %s, zone: zone-a } ]
  - name: hang
    timeouts: { per_try: 20s, request: 20s }
    retry: { attempts: 1 }
    # A dial that ends after its stream was reset leaves its connection
    # idle in the pool (as it should); one is kept, so the process's
    # goroutines and open files come back to the baseline without waiting
    # out the 90s idle timeout.
    max_idle_conns_per_backend: 1
    health: { passive: { consecutive_failures: 0 } }
    backends: [ { address: %s, zone: zone-a } ]
`, hostileStreamLimit, hostileStreamLimit, f.rec.addr, f.hang.addr))
	f.p, f.admin = reloadStart(t, path)
	f.addr = reloadListenerAddr(t, f.admin, "https")
	return f
}

// hostileServeRaw accepts TCP connections on ip and runs serve on each
// until the test ends; it returns the address.
func hostileServeRaw(t *testing.T, ip string, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listening on %s: %v", ip, err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				serve(c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// hostileSeen is one request as the recorder received it.
type hostileSeen struct {
	raw      string // request line and header block, as sent
	header   http.Header
	body     string
	complete bool // the body arrived whole, as framed
}

// hostileRecorder is a raw HTTP/1.1 backend that keeps the exact head of
// every request it gets and whether its body arrived whole; it answers
// 200 "ok".
type hostileRecorder struct {
	addr string
	mu   sync.Mutex
	seen []hostileSeen
}

func hostileStartRecorder(t *testing.T) *hostileRecorder {
	t.Helper()
	b := &hostileRecorder{}
	b.addr = hostileServeRaw(t, "127.0.1.1", func(c net.Conn) {
		var head bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c, &head))
		for {
			head.Reset()
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			raw, _, _ := strings.Cut(head.String(), "\r\n\r\n")
			body, err := io.ReadAll(req.Body)
			b.mu.Lock()
			b.seen = append(b.seen, hostileSeen{raw: raw + "\r\n", header: req.Header, body: string(body), complete: err == nil})
			b.mu.Unlock()
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	return b
}

func (b *hostileRecorder) requests() []hostileSeen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]hostileSeen(nil), b.seen...)
}

// hostileHanger is a raw backend that reads one request head per
// connection and never answers: the request ends only when the proxy
// closes the connection. It counts the requests in flight and their peak.
type hostileHanger struct {
	addr                 string
	seen, inflight, peak atomic.Int64
}

func hostileStartHanger(t *testing.T) *hostileHanger {
	t.Helper()
	h := &hostileHanger{}
	h.addr = hostileServeRaw(t, "127.0.1.2", func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		h.seen.Add(1)
		n := h.inflight.Add(1)
		defer h.inflight.Add(-1)
		for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
		}
		_, _ = io.Copy(io.Discard, c)
	})
	return h
}

// hostileUsage is the process's goroutines and open files, from /metrics.
type hostileUsage struct{ goroutines, fds float64 }

func hostileUsageNow(t *testing.T, admin string) hostileUsage {
	t.Helper()
	return hostileUsage{reloadMetric(t, admin, "go_goroutines"), reloadMetric(t, admin, "process_open_fds")}
}

// hostileBackToBaseline polls the process until its goroutines and open
// files are back to base. The slack is the admin scrape's own connection
// (one descriptor and up to two goroutines while it is served) and one
// idle connection to a backend that a request in the test may have left
// in the pool (one descriptor, up to two goroutines).
func hostileBackToBaseline(t *testing.T, admin string, base hostileUsage) {
	t.Helper()
	const gSlack, fdSlack = 4, 2
	var now hostileUsage
	deadline := time.Now().Add(10 * time.Second)
	for {
		now = hostileUsageNow(t, admin)
		if now.goroutines <= base.goroutines+gSlack && now.fds <= base.fds+fdSlack {
			t.Logf("goroutines %v (baseline %v), open files %v (baseline %v)", now.goroutines, base.goroutines, now.fds, base.fds)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back to baseline within 10s: goroutines %v (baseline %v), open files %v (baseline %v)",
				now.goroutines, base.goroutines, now.fds, base.fds)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// tlsConfig is the client TLS config for the fleet's listener with ALPN
// protos.
func (f *hostileFleet) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: f.ca.pool, ServerName: "a.test", NextProtos: protos}
}

// hostileWhole keeps the requests whose body arrived whole.
func hostileWhole(seen []hostileSeen) []hostileSeen {
	var out []hostileSeen
	for _, r := range seen {
		if r.complete {
			out = append(out, r)
		}
	}
	return out
}
