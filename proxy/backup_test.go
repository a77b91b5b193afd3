package proxy

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// backupRig is a pool "app" over a fleet in zones a, b and c with a backup
// pool "region-b" over one backend standing for the other region's
// proxies (zone r), which records the hop header of what it gets.
type backupRig struct {
	f      *fleet
	remote *testBackend
	px     *testProxy
	log    *lockedBuffer
	mu     sync.Mutex
	hops   []string // Azimuth-Region-Hop of each request the remote got
}

func startBackupRig(t *testing.T, h http.Handler) *backupRig {
	t.Helper()
	return startBackupRigWith(t, h, nil)
}

// startBackupRigWith is startBackupRig with both pools' settings changed
// by mod.
func startBackupRigWith(t *testing.T, h http.Handler, mod func(*PoolConfig)) *backupRig {
	t.Helper()
	rig := &backupRig{f: startFleet(t, 1, h), log: &lockedBuffer{b: &bytes.Buffer{}}}
	rig.remote = startBackend(t, "127.0.9.1", "r", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rig.mu.Lock()
		rig.hops = append(rig.hops, r.Header.Get(RegionHopHeader))
		rig.mu.Unlock()
		_, _ = w.Write([]byte("from the other region"))
	}))
	app := testPool(rig.f, func(pc *PoolConfig) {
		pc.Backup = "region-b"
		if mod != nil {
			mod(pc)
		}
	})
	bp := balancer.NewPool("region-b", balancer.Options{})
	bp.Update([]balancer.Spec{{Address: rig.remote.addr, Zone: "r", Weight: 1}})
	remote := testPool(rig.f, func(pc *PoolConfig) {
		if mod != nil {
			mod(pc)
		}
		pc.Name, pc.Balancer = "region-b", bp
	})
	rig.px = startProxyLogging(t, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, NewJSONAccessLog(rig.log, 1), app, remote)
	return rig
}

// lockedBuffer is a Writer the access log may call from many requests.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (rig *backupRig) hopsSeen() []string {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return append([]string(nil), rig.hops...)
}

func (rig *backupRig) backups(reason string) float64 {
	return testutil.ToFloat64(rig.px.metrics.backups.WithLabelValues("app", "region-b", reason))
}

// With every backend of the pool refusing, each request's own attempts
// find no answer and the backup pool takes it, marked with the hop header,
// POSTs too (nothing reached a backend). Once no backend of the pool is
// healthy, requests go to the backup pool before any attempt. A request
// that came from another region never crosses again.
func TestBackupPoolTakesWhatThePoolCannot(t *testing.T) {
	rig := startBackupRig(t, nil)
	c := &http.Client{Timeout: 10 * time.Second}
	if code, zone, _ := get(t, c, "GET", rig.px.URL+"/", nil, nil); code != 200 || zone == "r" {
		t.Fatalf("with the pool healthy: %d from zone %q, want its own", code, zone)
	}
	for _, b := range rig.f.all {
		b.refuse()
	}
	for i, m := range []string{"GET", "POST", "GET"} {
		code, zone, body := get(t, c, m, rig.px.URL+"/", strings.NewReader("x"), nil)
		if code != 200 || zone != "r" || body != "from the other region" {
			t.Errorf("%s %d with every backend refusing: %d from zone %q: %q", m, i, code, zone, body)
		}
	}
	if n := rig.backups(backupNoAnswer); n != 3 {
		t.Errorf("backups after no answer: %v, want 3", n)
	}
	for i, h := range rig.hopsSeen() {
		if h != "1" {
			t.Errorf("request %d reached the other region with hop header %q, want 1", i, h)
		}
	}

	// No healthy backend left: straight to the backup, no attempt here.
	for _, b := range rig.f.all {
		rig.pool("app").SetZoneDrained(b.zone, true)
	}
	if h := rig.pool("app").Healthy(); h != 0 {
		t.Fatalf("%d healthy after draining every zone", h)
	}
	if code, zone, _ := get(t, c, "GET", rig.px.URL+"/", nil, nil); code != 200 || zone != "r" {
		t.Errorf("with no healthy backend: %d from zone %q", code, zone)
	}
	if n := rig.backups(backupNoHealthy); n != 1 {
		t.Errorf("backups with no healthy backend: %v, want 1", n)
	}
	line := lastLine(rig.log)
	if !strings.Contains(line, `"pool":"region-b"`) || !strings.Contains(line, `"backup_for":"app","backup_reason":"no_healthy_backend"`) || !strings.Contains(line, `"tries":1`) {
		t.Errorf("access log line of a request sent to the backup: %s", line)
	}

	// A request from another region is answered here or not at all.
	before := len(rig.hopsSeen())
	code, zone, _ := get(t, c, "GET", rig.px.URL+"/", nil, http.Header{RegionHopHeader: {"1"}})
	if zone == "r" || len(rig.hopsSeen()) != before {
		t.Errorf("a request that already crossed regions crossed again: %d from zone %q", code, zone)
	}
}

// A request whose attempts got an answer, even an error status, stays
// with its pool; so does one the retry rules would not replay: a POST
// without an idempotency key that reached a backend, which then reset the
// connection. The same POST with a key crosses.
func TestBackupPoolOnlyWhenSafe(t *testing.T) {
	var reset atomic.Bool
	rig := startBackupRig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !reset.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close() // the body was read: the backend acted on it
		}
	}))
	c := &http.Client{Timeout: 10 * time.Second}
	if code, zone, _ := get(t, c, "GET", rig.px.URL+"/", nil, nil); code != 500 || zone == "r" {
		t.Errorf("a 500 from the pool: %d from zone %q, want the pool's own answer", code, zone)
	}
	reset.Store(true)
	code, zone, _ := get(t, c, "POST", rig.px.URL+"/", strings.NewReader("x"), nil)
	if zone == "r" || code != http.StatusBadGateway {
		t.Errorf("a POST without an idempotency key that reached a backend that reset: %d from zone %q, want 502 here", code, zone)
	}
	if n := len(rig.hopsSeen()); n != 0 {
		t.Errorf("%d requests reached the other region, want none", n)
	}
	code, zone, _ = get(t, c, "POST", rig.px.URL+"/", strings.NewReader("x"), http.Header{"Idempotency-Key": {"k1"}})
	if zone != "r" || code != 200 {
		t.Errorf("the same POST with an idempotency key: %d from zone %q, want the other region's answer; log: %s", code, zone, lastLine(rig.log))
	}
}

func (rig *backupRig) pool(name string) *balancer.Pool {
	return rig.px.Current().pools[name].Balancer
}

func lastLine(l *lockedBuffer) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(l.b.String()), "\n")
	return lines[len(lines)-1]
}

// A client's Azimuth-Region-Hop never reaches a backend: the proxy sets it
// only on what it sends to a backup pool.
func TestRegionHopHeaderFromAClientIsRemoved(t *testing.T) {
	var seen sync.Map
	f := startFleet(t, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get(RegionHopHeader), true)
	}))
	px := startProxy(t, testPool(f, nil))
	c := &http.Client{Timeout: 10 * time.Second}
	if code, _, _ := get(t, c, "GET", px.URL+"/", nil, http.Header{RegionHopHeader: {"1"}}); code != 200 {
		t.Fatalf("GET = %d", code)
	}
	seen.Range(func(k, _ any) bool {
		if k != "" {
			t.Errorf("a backend got %s: %q", RegionHopHeader, k)
		}
		return true
	})
}

// A request whose time ran out in its own pool's attempts does not cross:
// the backup pool would have none left to answer in, and its backends
// would be blamed for a request never sent to them.
func TestBackupPoolNotWithoutTimeLeft(t *testing.T) {
	rig := startBackupRigWith(t, nil, func(pc *PoolConfig) {
		pc.Timeouts = Timeouts{Connect: time.Second, PerTry: 0, Request: 300 * time.Millisecond}
	})
	for _, b := range rig.f.all {
		b.mode.Store(modeHang)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	code, zone, _ := get(t, c, "GET", rig.px.URL+"/", nil, nil)
	if code != http.StatusGatewayTimeout || zone == "r" {
		t.Errorf("a GET whose time ran out on hung backends: %d from zone %q, want 504 here", code, zone)
	}
	if n := len(rig.hopsSeen()); n != 0 || rig.backups(backupNoAnswer) != 0 {
		t.Errorf("%d requests reached the other region and %v crossings were counted with no time left", n, rig.backups(backupNoAnswer))
	}
}
