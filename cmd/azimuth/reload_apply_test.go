package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// A file that validates but cannot be applied (a new listener's address is
// taken) changes nothing: a listener it opened first is closed again, the
// running config serves on, and the same file is applied once the address
// is free.
func TestReloadApplyFailureRollsBack(t *testing.T) {
	be := reloadStartBackend(t, "127.0.1.1", 0)
	_, path := reloadDir(t)
	cfg := reloadConfig{listen: "127.0.0.1:0", backends: []*reloadBackend{be}}
	reloadWrite(t, path, cfg.yaml())
	p, admin := reloadStart(t, path)
	web := "http://" + reloadListenerAddr(t, admin, "web") + "/"
	tr := reloadStartTraffic(t, reloadClient(t, 2), web, 2)

	// Taken without SO_REUSEPORT, so azimuth cannot bind it.
	taken, err := net.Listen("tcp", "127.0.0.8:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	first := fmt.Sprintf("127.0.0.7:%d", reloadFreePort(t))
	content := strings.Replace(cfg.yaml(), "pools:\n", fmt.Sprintf(
		"  - name: first\n    address: %s\n    routes: [ { pool: web } ]\n"+
			"  - name: second\n    address: %s\n    routes: [ { pool: web } ]\npools:\n", first, taken.Addr()), 1)
	reloadWrite(t, path, content)
	testwait.Until(t, 10*time.Second, "the reload fails", func() bool {
		return reloadMetric(t, admin, reloadFailed) == 1
	})
	st := reloadGetStatus(t, admin)
	if st.Config.LastReloadOK || !strings.Contains(st.Config.LastReloadErr, "second") {
		t.Errorf("/status config = %+v; want the failed listener in the error", st.Config)
	}
	if len(st.Listen) != 1 {
		t.Errorf("listeners after a failed reload: %+v, want only web", st.Listen)
	}
	testwait.Until(t, 10*time.Second, "the listener opened by the failed reload is closed", func() bool {
		c, err := net.DialTimeout("tcp", first, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})

	taken.Close()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "the same file applies once the address is free", func() bool {
		return reloadMetric(t, admin, reloadOK) == 2
	})
	if v := reloadMetric(t, admin, reloadLastOK); v != 1 {
		t.Errorf("%s = %v, want 1", reloadLastOK, v)
	}
	if got := reloadListenerAddr(t, admin, "second"); got != taken.Addr().String() {
		t.Errorf("second listener on %s, want %s", got, taken.Addr())
	}
	tr.check(t, 10)
}

// A reload that fails late, at its last listener, after a new pool with
// active health checks and a new TLS listener were prepared, leaves
// nothing of the new config behind: no pool in /status or /metrics, no
// health check ever sent, the TLS listener closed, the process's
// goroutines back where they were.
func TestReloadFailingLateLeavesNothing(t *testing.T) {
	be := reloadStartBackend(t, "127.0.1.1", 0)
	var probes atomic.Int64
	probed := obsBackend(t, "127.0.2.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			probes.Add(1)
		}
	}))
	dir, path := reloadDir(t)
	tlsproxyWriteLeaf(t, tlsproxyNewCA(t, "edge CA"), dir)
	cfg := reloadConfig{listen: "127.0.0.1:0", backends: []*reloadBackend{be}}
	reloadWrite(t, path, cfg.yaml())
	_, admin := reloadStart(t, path)
	baseline := reloadMetric(t, admin, "go_goroutines")

	taken, err := net.Listen("tcp", "127.0.0.8:0") // no SO_REUSEPORT: azimuth cannot bind it
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	secure := fmt.Sprintf("127.0.0.7:%d", reloadFreePort(t))
	content := strings.Replace(cfg.yaml(), "pools:\n", fmt.Sprintf(
		"  - name: secure\n    address: %s\n    tls: { certificates: [ { cert_file: a.pem, key_file: a-key.pem } ] }\n    routes: [ { pool: extra } ]\n"+
			"  - name: taken\n    address: %s\n    routes: [ { pool: web } ]\npools:\n"+
			"  - name: extra\n    health: { active: { path: /healthz, interval: 100ms, timeout: 50ms } }\n"+
			"    backends: [ { address: %s, zone: zone-b } ]\n", secure, taken.Addr(), probed.addr), 1)
	reloadWrite(t, path, content)
	testwait.Until(t, 10*time.Second, "the reload fails", func() bool {
		return reloadMetric(t, admin, reloadFailed) == 1
	})
	st := reloadGetStatus(t, admin)
	if len(st.Pools) != 1 || st.Pools[0].Name != "web" || len(st.Listen) != 1 {
		t.Errorf("after the failed reload: pools %+v, listeners %+v; want web alone", st.Pools, st.Listen)
	}
	testwait.Until(t, 10*time.Second, "the TLS listener of the failed reload to close", func() bool {
		c, err := net.DialTimeout("tcp", secure, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	testwait.Until(t, 10*time.Second, "the goroutines to come back to the baseline", func() bool {
		return reloadMetric(t, admin, "go_goroutines") <= baseline
	})
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), `pool="extra"`) {
		t.Errorf("/metrics has series of the pool the failed reload planned:\n%s", grepLines(string(body), `pool="extra"`))
	}
	if n := probes.Load(); n != 0 {
		t.Errorf("the pool of the failed reload sent %d health checks", n)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
