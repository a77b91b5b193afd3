package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// TestObsAccessLogReopensOnSIGUSR1 rotates the access log as logrotate
// does: rename the file, send SIGUSR1, and the next lines go to a new file
// at the old path while nothing is lost.
func TestObsAccessLogReopensOnSIGUSR1(t *testing.T) {
	dir := t.TempDir()
	b := obsBackend(t, "127.0.1.1", obsNamed("a"))
	access := filepath.Join(dir, "access.log")
	p, admin := obsStart(t, obsConfig(t, dir, fmt.Sprintf(
		"log: { access_log: { output: %s } }\npools:\n  - name: web\n    backends: [{ address: %s, zone: a }]\n", access, b.addr)))
	addr := obsListener(t, admin, "", "http")

	obsProxyGet(t, addr, 3)
	testwait.Until(t, 10*time.Second, "3 lines before rotation", func() bool { return len(obsReadLines(t, access)) == 3 })
	rotated := access + ".1"
	if err := os.Rename(access, rotated); err != nil {
		t.Fatal(err)
	}
	obsProxyGet(t, addr, 1) // still written to the renamed file
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "access log reopened", func(l map[string]any) bool { return l["path"] == access })
	obsProxyGet(t, addr, 2)
	testwait.Until(t, 10*time.Second, "2 lines in the new file", func() bool {
		_, err := os.Stat(access)
		return err == nil && len(obsReadLines(t, access)) == 2
	})
	if n := len(obsReadLines(t, rotated)); n != 4 {
		t.Errorf("rotated file has %d lines, want 4", n)
	}
	for i, l := range obsReadLines(t, access) {
		if want := fmt.Sprintf("/item/%d", i); l["path"] != want {
			t.Errorf("new file line %d: path %v, want %s", i, l["path"], want)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestObsAccessLogSamplesSuccesses: with log.access_log.sample_success 0,
// successful requests are counted but not logged, failures always are.
func TestObsAccessLogSamplesSuccesses(t *testing.T) {
	dir := t.TempDir()
	b := obsBackend(t, "127.0.1.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	access := filepath.Join(dir, "access.log")
	p, admin := obsStart(t, obsConfig(t, dir, fmt.Sprintf(
		"log: { access_log: { output: %s, sample_success: 0 } }\npools:\n  - name: web\n"+
			"    health: { passive: { consecutive_failures: 0 } }\n    backends: [{ address: %s, zone: a }]\n", access, b.addr)))
	addr := obsListener(t, admin, "", "http")
	obsProxyGet(t, addr, 5)
	for range 2 {
		if code, _ := obsDo(t, "GET", "http://"+addr+"/fail", ""); code != http.StatusServiceUnavailable {
			t.Fatalf("/fail = %d, want 503", code)
		}
	}
	obsProxyGet(t, addr, 1)
	fams := obsScrape(t, admin, "")
	if got := obsValue(t, fams, "azimuth_requests_total", map[string]string{"pool": "web", "code": "200"}); got != 6 {
		t.Errorf("requests_total{code=200} = %v, want 6: sampling must not hide requests from metrics", got)
	}
	// The stop writes every line that waits.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := obsReadLines(t, access)
	if len(lines) != 2 {
		t.Fatalf("%d access log lines, want the 2 failures: %v", len(lines), lines)
	}
	for _, l := range lines {
		if l["status"] != float64(503) || l["path"] != "/fail" {
			t.Errorf("logged %v, want only the 503s", l)
		}
	}
}

// TestObsAccessLogBatched: lines wait to be written together, SIGHUP
// writes them at once, and a clean stop loses none. (The text format
// batches the same way: TestAccessLogFlushEvery in proxy.)
func TestObsAccessLogBatched(t *testing.T) {
	dir := t.TempDir()
	b := obsBackend(t, "127.0.1.1", obsNamed("a"))
	access := filepath.Join(dir, "access.log")
	p, admin := obsStart(t, obsConfig(t, dir, fmt.Sprintf(
		"log: { access_log: { output: %s, flush_interval: 10s } }\npools:\n  - name: web\n    backends: [{ address: %s, zone: a }]\n",
		access, b.addr)))
	addr := obsListener(t, admin, "", "http")
	lines := func() int {
		data, err := os.ReadFile(access)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.Count(string(data), "\n")
	}

	obsProxyGet(t, addr, 3)
	if n := lines(); n != 0 {
		t.Fatalf("%d lines written at once with flush_interval 10s, want them waiting", n)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Well within the 10s interval: only the signal writes them.
	testwait.Until(t, 5*time.Second, "SIGHUP to write the 3 waiting lines", func() bool { return lines() == 3 })

	obsProxyGet(t, addr, 2)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := len(obsReadLines(t, access)); n != 5 {
		t.Errorf("%d lines after a clean stop, want 5", n)
	}
}

// TestObsAccessLogDefaultBatch: a config without flush_interval gathers
// lines too, and they reach the file within moments of their requests.
func TestObsAccessLogDefaultBatch(t *testing.T) {
	dir := t.TempDir()
	b := obsBackend(t, "127.0.1.1", obsNamed("a"))
	access := filepath.Join(dir, "access.log")
	_, admin := obsStart(t, obsConfig(t, dir, fmt.Sprintf(
		"log: { access_log: { output: %s } }\npools:\n  - name: web\n    backends: [{ address: %s, zone: a }]\n", access, b.addr)))
	addr := obsListener(t, admin, "", "http")
	obsProxyGet(t, addr, 4)
	testwait.Until(t, 5*time.Second, "4 lines", func() bool { return len(obsReadLines(t, access)) == 4 })
}
