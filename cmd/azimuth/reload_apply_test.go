package main

import (
	"fmt"
	"net"
	"strings"
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
