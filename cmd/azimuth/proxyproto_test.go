package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/proxyproto"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// lookTool finds a tool the test runs, on PATH or in /usr/sbin (Debian
// puts haproxy there), and fails the test when it is missing: make test
// installs it (tools/deps.sh).
func lookTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); fileExists(p) {
		return p
	}
	t.Fatalf("this test runs %s, which is not installed: run tools/deps.sh (make test does)", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// proxyBackend is a backend that reads the PROXY header azimuth sends
// (from anyone) and answers with the client it names and the
// X-Forwarded-For it got.
func proxyBackend(t *testing.T) string {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.1.61:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := proxyproto.NewListener(inner, func(netip.Addr) bool { return true }, 5*time.Second, nil)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proxy-Client", r.RemoteAddr)
		w.Header().Set("X-Seen-Xff", r.Header.Get("X-Forwarded-For"))
		_, _ = io.WriteString(w, "ok\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return inner.Addr().String()
}

// The PROXY protocol end to end with real peers: a real HAProxy sending
// version 2 in front of azimuth, and curl --haproxy-protocol sending
// version 1; azimuth takes the client they name for X-Forwarded-For and
// sends it on to a backend in its own PROXY header (version 2). A peer
// that is not trusted is not believed: its header is a bad request.
func TestProxyProtocolEndToEnd(t *testing.T) {
	haproxy := lookTool(t, "haproxy")
	curl := lookTool(t, "curl")
	be := proxyBackend(t)
	dir := t.TempDir()
	port := reloadFreePort(t)
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`admin: { address: 127.0.0.1:0 }
shutdown: { drain_delay: 0s, grace: 2s }
log: { access_log: { output: "off" } }
listeners:
  - name: http
    address: 127.0.0.1:%d
    proxy_protocol: true
    trusted_proxies: [127.0.0.1, 127.0.8.8]
    routes: [ { pool: web } ]
pools:
  - name: web
    send_proxy_protocol: v2
    health: { active: { path: /, interval: 200ms, timeout: 100ms, rise: 1 } }
    backends: [ { address: %s } ]
`, port, be)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, admin, listener := overridesStart(t, path)
	// The backend takes only connections that begin with a PROXY header:
	// the checks send a LOCAL one, and it stays up.
	time.Sleep(600 * time.Millisecond) // three check intervals; a failing check would take it down
	if st := reloadGetStatus(t, admin); len(st.Pools) != 1 || len(st.Pools[0].Backends) != 1 || st.Pools[0].Backends[0].State != "up" {
		t.Fatalf("the backend behind send_proxy_protocol, checked: %+v", st.Pools)
	}

	// HAProxy in front, on 127.0.0.1, sending version 2.
	front := reloadFreePort(t)
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global
  maxconn 100
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend f
  bind 127.0.0.1:%d
  default_backend b
backend b
  server azimuth %s send-proxy-v2
`, front, listener)), 0o644); err != nil {
		t.Fatal(err)
	}
	hp := exec.Command(haproxy, "-f", cfg, "-db")
	hp.Stdout, hp.Stderr = io.Discard, io.Discard
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hp.Process.Kill(); _ = hp.Wait() })
	// A client on its own loopback address, so the address that reaches
	// the backend can only have come through both headers.
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.9.9")}}).DialContext}}
	var resp *http.Response
	testwait.Until(t, 10*time.Second, "haproxy to listen", func() bool {
		r, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", front))
		if err != nil {
			return false
		}
		resp = r
		return true
	})
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Seen-Xff") != "127.0.9.9" || !strings.HasPrefix(resp.Header.Get("X-Proxy-Client"), "127.0.9.9:") {
		t.Fatalf("through haproxy: %d, X-Forwarded-For %q, the backend's PROXY client %q; want 127.0.9.9 for both",
			resp.StatusCode, resp.Header.Get("X-Seen-Xff"), resp.Header.Get("X-Proxy-Client"))
	}

	// curl sending version 1 from 127.0.8.8 (trusted): the header is read.
	out, err := exec.Command(curl, "-sS", "-D", "-", "-o", "/dev/null", "--haproxy-protocol", "--interface", "127.0.8.8", "http://"+listener+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("curl --haproxy-protocol: %v\n%s", err, out)
	}
	headers := parseHeaders(t, string(out))
	if headers.Get("X-Seen-Xff") != "127.0.8.8" || !strings.HasPrefix(headers.Get("X-Proxy-Client"), "127.0.8.8:") {
		t.Errorf("curl --haproxy-protocol: %q", out)
	}

	// From 127.0.7.7, not trusted, a PROXY header is not believed: the
	// connection is read as HTTP, and the header is a bad request.
	out, _ = exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--haproxy-protocol", "--interface", "127.0.7.7", "http://"+listener+"/").CombinedOutput()
	if code := strings.TrimSpace(string(out)); code != "400" {
		t.Errorf("a PROXY header from an untrusted peer got %q, want 400", code)
	}
	// And a plain request from it is served, with its own address.
	out, err = exec.Command(curl, "-sS", "-D", "-", "-o", "/dev/null", "--interface", "127.0.7.7", "http://"+listener+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("curl from an untrusted peer: %v\n%s", err, out)
	}
	if h := parseHeaders(t, string(out)); h.Get("X-Seen-Xff") != "127.0.7.7" {
		t.Errorf("an untrusted peer's request: %q", out)
	}
	// A trusted peer that sends no header is closed, not served.
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.8.8")}}).Dial("tcp", listener)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if line, _ := bufio.NewReader(c).ReadString('\n'); line != "" {
		t.Errorf("a trusted peer without a PROXY header was answered %q", line)
	}
}

// parseHeaders reads the response head curl -D - printed.
func parseHeaders(t *testing.T, s string) http.Header {
	t.Helper()
	h := http.Header{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			h.Add(k, strings.TrimSpace(v))
		}
	}
	return h
}
