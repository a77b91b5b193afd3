package main

import (
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// drainGet sends one GET on a fresh connection and returns its status or
// error text.
func drainGet(url string) string {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "reading body: " + err.Error()
	}
	return resp.Status
}

// drainReadyz returns /readyz's status code, or 0 if it did not answer.
func drainReadyz(admin string) int {
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDrainOnStopSignal(t *testing.T) {
	const slow = 300 * time.Millisecond
	tests := []struct {
		name     string
		first    syscall.Signal
		second   bool // a second stop signal during drain_delay
		drain    string
		wantCode int
	}{
		{"SIGTERM drains in-flight requests", syscall.SIGTERM, false, "500ms", 0},
		{"SIGINT drains in-flight requests", syscall.SIGINT, false, "500ms", 0},
		{"second signal exits at once", syscall.SIGTERM, true, "10s", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := reloadStartBackend(t, "127.0.1.1", slow)
			_, path := reloadDir(t)
			reloadWrite(t, path, reloadConfig{listen: "127.0.0.1:0", backends: []*reloadBackend{be}, drainDelay: tt.drain, grace: "5s"}.yaml())
			p, admin := reloadStart(t, path)
			url := "http://" + reloadListenerAddr(t, admin, "web") + "/"
			if code := drainReadyz(admin); code != http.StatusOK {
				t.Fatalf("/readyz = %d before the signal, want 200", code)
			}

			// Requests in flight on the slow backend when the signal comes.
			const inFlight = 6
			results := make([]string, inFlight)
			var wg sync.WaitGroup
			for i := range inFlight {
				wg.Go(func() { results[i] = drainGet(url) })
			}
			testwait.Until(t, 5*time.Second, "requests in flight at the backend", func() bool {
				return be.started.Load() == inFlight
			})
			signalled := time.Now()
			if err := p.cmd.Process.Signal(tt.first); err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, 2*time.Second, "/readyz fails after the signal", func() bool {
				return drainReadyz(admin) == http.StatusServiceUnavailable
			})

			if tt.second {
				p.waitLog(t, "draining: readiness fails now", nil)
				if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				code := p.exitCode(t)
				if took := time.Since(signalled); code != tt.wantCode || took > 3*time.Second {
					t.Fatalf("second signal: exit %d after %v; want %d well before drain_delay %s", code, took, tt.wantCode, tt.drain)
				}
				if !drainLogged(p, "azimuth: second stop signal: exiting without draining") {
					t.Errorf("exit after a second signal does not say why")
				}
				wg.Wait()
				return
			}

			// Readiness fails first; the listener still takes new
			// connections during drain_delay, so health checkers have time
			// to move traffic away.
			if got := drainGet(url); got != "200 OK" {
				t.Errorf("a new connection during drain_delay got %s, want 200 OK", got)
			}
			wg.Wait()
			for i, r := range results {
				if r != "200 OK" {
					t.Errorf("in-flight request %d: %s, want 200 OK", i, r)
				}
			}
			if code := p.exitCode(t); code != tt.wantCode {
				t.Fatalf("exit %d, want %d", code, tt.wantCode)
			}
			if took := time.Since(signalled); took < 500*time.Millisecond {
				t.Errorf("exited %v after the signal, before drain_delay ended", took)
			}
			p.waitLog(t, "stopped", nil)
			if got := drainGet(url); got == "200 OK" {
				t.Errorf("listener still answers after exit")
			}
		})
	}
}

// drainLogged reports whether the process wrote the non-JSON line.
func drainLogged(p *process, line string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if l["raw"] == line {
			return true
		}
	}
	return false
}

// shutdown.grace bounds the drain: a request slower than it is cut, the
// log says so, and the process still exits 0 soon after drain_delay+grace.
func TestDrainGraceBoundsSlowRequests(t *testing.T) {
	be := reloadStartBackend(t, "127.0.1.1", 5*time.Second)
	_, path := reloadDir(t)
	reloadWrite(t, path, reloadConfig{listen: "127.0.0.1:0", backends: []*reloadBackend{be}, drainDelay: "100ms", grace: "300ms"}.yaml())
	p, admin := reloadStart(t, path)
	url := "http://" + reloadListenerAddr(t, admin, "web") + "/"
	result := make(chan string, 1)
	go func() { result <- drainGet(url) }()
	testwait.Until(t, 5*time.Second, "the slow request reaches the backend", func() bool { return be.started.Load() == 1 })
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if took := time.Since(signalled); took > 3*time.Second {
		t.Errorf("exit took %v; drain_delay 100ms + grace 300ms should bound it", took)
	}
	if r := <-result; r == "200 OK" {
		t.Errorf("a request slower than the grace period completed: %s", r)
	}
	p.waitLog(t, "listener closed before its requests finished", nil)
}
