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

const upgradeServed = `azimuth_requests_total{code="200",listener="web",pool="web"}`

// A binary upgrade: a second process binds the same listener port with
// SO_REUSEPORT while the first one still serves, then the first drains and
// exits. The client loop sees no failure, and ends up served by the second.
func TestUpgradeSecondProcessTakesOver(t *testing.T) {
	be := reloadStartBackend(t, "127.0.1.1", 0)
	// A fixed port for both processes: picked free a moment ago, so a
	// concurrent test could take it in between (then binding fails loudly).
	listen := fmt.Sprintf("127.0.0.1:%d", reloadFreePort(t))
	cfg := reloadConfig{listen: listen, backends: []*reloadBackend{be}, drainDelay: "300ms", grace: "5s"}.yaml()
	dir := t.TempDir()
	path1, path2 := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml")
	reloadWrite(t, path1, cfg)
	reloadWrite(t, path2, cfg)

	old, oldAdmin := reloadStart(t, path1)
	if got := reloadListenerAddr(t, oldAdmin, "web"); got != listen {
		t.Fatalf("old process bound %s, want %s", got, listen)
	}
	const workers = 4
	tr := reloadStartTraffic(t, reloadClient(t, workers), "http://"+listen+"/", workers)
	testwait.Until(t, 5*time.Second, "the old process serves", func() bool { return tr.ok.Load() > 20 })

	next, nextAdmin := reloadStart(t, path2)
	if oldAdmin == nextAdmin {
		t.Fatalf("both processes on admin %s", oldAdmin)
	}
	if got := reloadListenerAddr(t, nextAdmin, "web"); got != listen {
		t.Fatalf("new process bound %s, want %s", got, listen)
	}
	testwait.Until(t, 5*time.Second, "the new process is ready", func() bool {
		return drainReadyz(nextAdmin) == http.StatusOK
	})

	if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := old.exitCode(t); code != 0 {
		t.Fatalf("old process exit %d, want 0", code)
	}
	// With the old process gone, every request lands on the new one.
	servedBefore := reloadMetric(t, nextAdmin, upgradeServed)
	okBefore := tr.ok.Load()
	testwait.Until(t, 5*time.Second, "traffic continues after the old process exits", func() bool {
		return tr.ok.Load() > okBefore+100
	})
	tr.check(t, 200)
	// A request is counted as its handler returns, just after the client
	// has the whole answer: the count may lag the client by a request or
	// two for a moment. And each worker may count, after the old process
	// exited, the answer the old one sent it last (a busy machine can
	// delay the client's read past the exit): those the new one never saw.
	okAfter := tr.ok.Load()
	testwait.Until(t, 5*time.Second, "the new process to count every request after the old one exited", func() bool {
		return reloadMetric(t, nextAdmin, upgradeServed)-servedBefore >= float64(okAfter-okBefore-workers)
	})

	if err := next.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := next.exitCode(t); code != 0 {
		t.Fatalf("new process exit %d, want 0", code)
	}
}
