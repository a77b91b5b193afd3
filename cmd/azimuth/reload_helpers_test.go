package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
)

// reloadBackend is a real HTTP backend on a loopback address. It names
// itself in X-Backend, so a client can tell which backend served it, and
// echoes the client subject header the proxy sent, if any.
type reloadBackend struct {
	addr string
	srv  *httptest.Server
	hits atomic.Int64
	// started counts requests that reached the handler, before any delay.
	started atomic.Int64
}

// reloadStartBackend serves on ip:0 (ip stands for a zone); each response
// takes delay.
func reloadStartBackend(t *testing.T, ip string, delay time.Duration) *reloadBackend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("backend on %s: %v", ip, err)
	}
	b := &reloadBackend{addr: ln.Addr().String()}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.started.Add(1)
		if delay > 0 {
			select { // a slow backend, not a wait for an event
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		b.hits.Add(1)
		w.Header().Set("X-Backend", b.addr)
		w.Header().Set("X-Seen-Subject", r.Header.Get("X-Client-Subject"))
		w.Header().Set("X-Seen-Proto", r.Proto)
		_, _ = io.WriteString(w, "ok from "+b.addr+"\n")
	}))
	b.srv.Listener.Close()
	b.srv.Listener = ln
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

// reloadZoneOf maps a backend's loopback address to the zone it stands for.
func reloadZoneOf(addr string) string {
	switch {
	case strings.HasPrefix(addr, "127.0.1."):
		return "zone-a"
	case strings.HasPrefix(addr, "127.0.2."):
		return "zone-b"
	default:
		return "zone-c"
	}
}

// reloadConfig is the config the reload, drain and upgrade tests run: one
// plain listener in front of one pool. listenerExtra is YAML appended to
// the listener (indented 4 spaces), for limits.
type reloadConfig struct {
	listen        string
	backends      []*reloadBackend
	drainDelay    string
	grace         string
	listenerExtra string
}

func (c reloadConfig) yaml() string {
	drain, grace := c.drainDelay, c.grace
	if drain == "" {
		drain = "100ms"
	}
	if grace == "" {
		grace = "5s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "zone: zone-a\nadmin: { address: 127.0.0.1:0 }\n")
	fmt.Fprintf(&b, "log: { level: info, access_log: { output: \"off\" } }\n")
	fmt.Fprintf(&b, "shutdown: { drain_delay: %s, grace: %s }\n", drain, grace)
	fmt.Fprintf(&b, "listeners:\n  - name: web\n    address: %s\n    routes:\n      - pool: web\n", c.listen)
	b.WriteString(c.listenerExtra)
	b.WriteString("pools:\n  - name: web\n    backends:\n")
	for _, be := range c.backends {
		fmt.Fprintf(&b, "      - { address: %s, zone: %s }\n", be.addr, reloadZoneOf(be.addr))
	}
	return b.String()
}

// reloadWrite writes the file in place, as `cat > file` does.
func reloadWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reloadStart runs azimuth on the config and returns it with its admin
// address.
func reloadStart(t *testing.T, path string) (*process, string) {
	t.Helper()
	p := start(t, path)
	admin := p.waitLog(t, "admin listening", nil)["address"].(string)
	return p, admin
}

// reloadGetStatus reads /status.
func reloadGetStatus(t *testing.T, admin string) instance.Status {
	t.Helper()
	return getStatusWith(t, admin, "")
}

// getStatusWith reads /status with an admin token ("" for none).
func getStatusWith(t *testing.T, admin, token string) instance.Status {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/status", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	defer resp.Body.Close()
	var st instance.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decoding /status: %v", err)
	}
	return st
}

// reloadListenerAddr returns the bound address of the named listener.
func reloadListenerAddr(t *testing.T, admin, name string) string {
	t.Helper()
	for _, l := range reloadGetStatus(t, admin).Listeners {
		if l.Name == name {
			return l.Address
		}
	}
	t.Fatalf("no listener %q in /status", name)
	return ""
}

// reloadPoolBackends returns the sorted backend addresses of a pool as
// /status shows them.
func reloadPoolBackends(st instance.Status, pool string) []string {
	var out []string
	for _, p := range st.Pools {
		if p.Name == pool {
			for _, b := range p.Backends {
				out = append(out, b.Address)
			}
		}
	}
	slices.Sort(out)
	return out
}

func reloadAddrs(bs ...*reloadBackend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.addr)
	}
	slices.Sort(out)
	return out
}

// reloadMetric returns the value of one series (name and labels exactly as
// exposed, e.g. `azimuth_config_reloads_total{result="success"}`).
func reloadMetric(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("series %s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

const (
	reloadOK     = `azimuth_config_reloads_total{result="success"}`
	reloadFailed = `azimuth_config_reloads_total{result="failure"}`
	reloadLastOK = `azimuth_config_last_reload_successful`
)

// reloadTraffic is a client loop: a few workers sending GETs over
// keep-alive connections until stopped, recording every failure.
type reloadTraffic struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64

	mu     sync.Mutex
	errs   []string
	served map[string]int64 // by X-Backend
}

// reloadStartTraffic starts workers against url. The loop is bounded: it
// ends after a minute or 200,000 requests even if never stopped.
func reloadStartTraffic(t *testing.T, client *http.Client, url string, workers int) *reloadTraffic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tr := &reloadTraffic{cancel: cancel, served: map[string]int64{}}
	var budget atomic.Int64
	budget.Store(200_000)
	for range workers {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for ctx.Err() == nil && budget.Add(-1) >= 0 {
				tr.once(client, url)
			}
		}()
	}
	t.Cleanup(tr.stop)
	return tr
}

func (tr *reloadTraffic) once(client *http.Client, url string) {
	resp, err := client.Get(url)
	if err != nil {
		tr.fail(err.Error())
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	be := resp.Header.Get("X-Backend")
	switch {
	case err != nil:
		tr.fail("reading body: " + err.Error())
	case resp.StatusCode != http.StatusOK || be == "":
		tr.fail(fmt.Sprintf("status %d from %q: %q", resp.StatusCode, be, body))
	default:
		tr.ok.Add(1)
		tr.mu.Lock()
		tr.served[be]++
		tr.mu.Unlock()
	}
}

func (tr *reloadTraffic) fail(msg string) {
	tr.mu.Lock()
	tr.errs = append(tr.errs, time.Now().Format("15:04:05.000")+" "+msg)
	tr.mu.Unlock()
}

// stop ends the loop and waits for its workers.
func (tr *reloadTraffic) stop() {
	tr.cancel()
	tr.wg.Wait()
}

// servedBy returns how many responses came from the backend so far.
func (tr *reloadTraffic) servedBy(addr string) int64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.served[addr]
}

// check stops the loop and fails the test if any request failed or too few
// succeeded.
func (tr *reloadTraffic) check(t *testing.T, minOK int64) {
	t.Helper()
	tr.stop()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if n := len(tr.errs); n > 0 {
		t.Errorf("%d of %d requests failed; first: %s", n, int64(n)+tr.ok.Load(), strings.Join(tr.errs[:min(n, 5)], "; "))
	}
	if tr.ok.Load() < minOK {
		t.Errorf("only %d requests succeeded, want at least %d", tr.ok.Load(), minOK)
	}
	t.Logf("client loop: %d requests, %d failed", tr.ok.Load()+int64(len(tr.errs)), len(tr.errs))
}

// reloadClient is a keep-alive client for the loop.
func reloadClient(t *testing.T, workers int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: 0}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// reloadFreePort returns a port that was free a moment ago on 127.0.0.1:
// for tests that need one fixed port across two configs or processes.
func reloadFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// reloadDir returns a fresh directory and the config path inside it.
func reloadDir(t *testing.T) (string, string) {
	dir := t.TempDir()
	return dir, filepath.Join(dir, "azimuth.yaml")
}
