package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// regionConfig is one region's proxy: pool web over its own backend, with
// the other region's proxy as its backup pool.
func regionConfig(t *testing.T, dir, zone string, port int, backend, otherRegion string) string {
	t.Helper()
	cfg := fmt.Sprintf(`zone: %[1]s
admin: { address: 127.0.0.1:0 }
shutdown: { grace: 2s, drain_delay: 0s }
log: { access_log: { output: %[2]s, flush_interval: "0" } }
listeners:
  - name: http
    address: 127.0.0.1:%[3]d
    routes: [{ pool: web }]
pools:
  - name: web
    backup_pool: other-region
    health: { active: { path: /, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 } }
    backends: [{ address: %[4]s, zone: %[1]s }]
  - name: other-region
    backends: [{ address: %[5]s, zone: other }]
`, zone, filepath.Join(dir, "access.log"), port, backend, otherRegion)
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRegionsBackUpEachOther: two proxies as two regions, each the other's
// backup pool. When every backend of region A dies, every GET sent to A is
// answered through B, from the moment it dies (the attempts in A find no
// answer and the request crosses) and after A's checks mark it down (the
// request crosses before any attempt); A's readiness fails. When B's
// backend dies too, a request crosses once and comes back to nobody: B
// answers it with an error of its own, and A's access log has exactly one
// line per client request.
func TestRegionsBackUpEachOther(t *testing.T) {
	beA := obsBackend(t, "127.0.1.1", obsNamed("backend-a"))
	beB := obsBackend(t, "127.0.2.1", obsNamed("backend-b"))
	portA, portB := reloadFreePort(t), reloadFreePort(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pa := start(t, regionConfig(t, dirA, "a", portA, beA.addr, fmt.Sprintf("127.0.0.1:%d", portB)))
	pb := start(t, regionConfig(t, dirB, "b", portB, beB.addr, fmt.Sprintf("127.0.0.1:%d", portA)))
	adminA := pa.waitLog(t, "admin listening", nil)["address"].(string)
	pb.waitLog(t, "admin listening", nil)
	urlA := fmt.Sprintf("http://127.0.0.1:%d/", portA)
	testwait.Until(t, 10*time.Second, "A ready", func() bool { code, _ := obsReady(t, adminA); return code == http.StatusOK })

	sent := 0
	getA := func() (int, string) {
		sent++
		code, body := obsDo(t, "GET", urlA, "")
		return code, string(body)
	}
	if code, body := getA(); code != 200 || body != "backend-a" {
		t.Fatalf("A with its backend up: %d %q", code, body)
	}

	beA.close()
	// From the first request after the failure, whether A's checks have
	// marked its backend down yet or not.
	deadline := time.Now().Add(3 * time.Second)
	n := 0
	for ; time.Now().Before(deadline) || n < 50; n++ {
		if code, body := getA(); code != 200 || body != "backend-b" {
			t.Fatalf("GET %d to A after its backend died: %d %q, want B's backend's answer", n, code, body)
		}
	}
	testwait.Until(t, 5*time.Second, "A's readiness to fail", func() bool { code, _ := obsReady(t, adminA); return code == http.StatusServiceUnavailable })
	st := obsGetStatus(t, adminA, "")
	if st.Readiness.Ready {
		t.Errorf("A's status reads ready with no backend: %+v", st.Readiness)
	}

	// Both regions down: one crossing, no way back.
	beB.close()
	testwait.Until(t, 5*time.Second, "requests to A to fail with both regions down", func() bool {
		code, _ := getA()
		return code >= 500
	})
	for range 10 {
		if code, body := getA(); code < 500 {
			t.Fatalf("with both regions' backends down A answered %d %q", code, body)
		}
	}
	linesA := obsReadLines(t, filepath.Join(dirA, "access.log"))
	if len(linesA) != sent {
		t.Errorf("A logged %d requests for %d sent: a request came back from B", len(linesA), sent)
	}
	crossed := 0
	for _, l := range linesA {
		if l["backup_for"] == "web" {
			crossed++
		}
	}
	if crossed != sent-1 {
		t.Errorf("A sent %d of %d requests to B, want all but the first", crossed, sent)
	}
	for _, l := range obsReadLines(t, filepath.Join(dirB, "access.log")) {
		if l["backup_for"] != nil {
			t.Errorf("B sent a request that came from A on to a backup: %v", l)
		}
	}
}
