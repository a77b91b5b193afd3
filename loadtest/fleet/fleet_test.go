package fleet_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

func startFleet(t *testing.T) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Start(fleet.Options{Zones: []string{"a", "b"}, PerZone: 2, Latency: fleet.Latency{Fixed: time.Millisecond}, Seed: 1})
	if err != nil {
		t.Fatalf("starting fleet: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("closing fleet: %v", err)
		}
	})
	return f
}

// get sends one request and reads the whole body, returning the status,
// how long it took, and the error.
func get(c *http.Client, url string) (int, time.Duration, error) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return 0, time.Since(start), err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return resp.StatusCode, time.Since(start), err
}

func TestLayoutAndHeaders(t *testing.T) {
	f := startFleet(t)
	want := map[string]string{"a-1": "127.0.1.1:", "a-2": "127.0.1.2:", "b-1": "127.0.2.1:", "b-2": "127.0.2.2:"}
	if len(f.Backends()) != len(want) {
		t.Fatalf("got %d backends, want %d", len(f.Backends()), len(want))
	}
	for _, b := range f.Backends() {
		if !strings.HasPrefix(b.Addr, want[b.Name]) {
			t.Errorf("backend %s at %s, want %s*", b.Name, b.Addr, want[b.Name])
		}
		resp, err := http.Get("http://" + b.Addr + "/")
		if err != nil {
			t.Fatalf("get %s: %v", b.Name, err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Backend") != b.Name || resp.Header.Get("X-Backend-Zone") != b.Zone {
			t.Errorf("%s answered X-Backend=%q X-Backend-Zone=%q", b.Name, resp.Header.Get("X-Backend"), resp.Header.Get("X-Backend-Zone"))
		}
		hr, err := http.Get("http://" + b.Addr + "/healthz")
		if err != nil || hr.StatusCode != 200 {
			t.Fatalf("healthz of %s: %v %v", b.Name, hr, err)
		}
		hr.Body.Close()
		if b.Requests() != 1 || b.HealthChecks() != 1 {
			t.Errorf("%s counted %d requests, %d health checks; want 1, 1", b.Name, b.Requests(), b.HealthChecks())
		}
	}
}

func TestCountsMethodsAndKeys(t *testing.T) {
	f := startFleet(t)
	b := f.Backend("b-2")
	for i, key := range []string{"k1", "k2", "k2"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr+"/orders", strings.NewReader("{}"))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("X-Request-Id", "r"+string(rune('0'+i)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := b.Methods()["POST"]; got != 3 {
		t.Errorf("POST count %d, want 3", got)
	}
	for key, want := range map[string]int64{"k1": 1, "k2": 2, "r0": 1, "missing": 0} {
		if got := f.KeyCount(key); got != want {
			t.Errorf("KeyCount(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestFaults(t *testing.T) {
	const clientTimeout = 400 * time.Millisecond
	tests := []struct {
		name  string
		fault string
		// warm sends one good request first so the fault meets an open
		// keep-alive connection.
		warm  bool
		check func(t *testing.T, status int, err error, took time.Duration)
	}{
		{"blackhole hangs new connections", "blackhole", false, wantTimeout(clientTimeout)},
		{"blackhole hangs keep-alive connections", "blackhole", true, wantTimeout(clientTimeout)},
		{"refuse refuses connects", "refuse", false, wantRefused},
		{"refuse closes open connections", "refuse", true, wantRefused},
		{"reset fails mid-body", "reset", true, func(t *testing.T, status int, err error, _ time.Duration) {
			if status != 200 || err == nil {
				t.Fatalf("got status %d err %v, want 200 headers then a body error", status, err)
			}
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("body error %v, want a connection reset", err)
			}
		}},
		{"reset_before_headers resets new connections", "reset_before_headers", false, wantResetBeforeHeaders},
		{"reset_before_headers resets keep-alive connections", "reset_before_headers", true, wantResetBeforeHeaders},
		{"status answers the code", "status: 503", false, func(t *testing.T, status int, err error, _ time.Duration) {
			if err != nil || status != 503 {
				t.Errorf("got %d %v, want 503", status, err)
			}
		}},
		{"slow adds the delay", "slow: 200ms", false, func(t *testing.T, status int, err error, took time.Duration) {
			if err != nil || status != 200 || took < 200*time.Millisecond || took > time.Second {
				t.Errorf("got %d %v in %v, want 200 after 200ms..1s", status, err, took)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFleet(t)
			fault, err := fleet.ParseFault(tc.fault)
			if err != nil {
				t.Fatal(err)
			}
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: clientTimeout}
			url := "http://" + f.Zone("a")[0].Addr + "/"
			if tc.warm {
				if st, _, err := get(c, url); err != nil || st != 200 {
					t.Fatalf("warm-up: %d %v", st, err)
				}
			}
			if err := f.ApplyZone("a", fault); err != nil {
				t.Fatalf("applying %s: %v", tc.fault, err)
			}
			st, took, err := get(c, url)
			tc.check(t, st, err, took)

			// The other zone is untouched, and restore heals this one.
			if st, _, err := get(c, "http://"+f.Zone("b")[0].Addr+"/"); err != nil || st != 200 {
				t.Errorf("zone b during %s: %d %v", tc.fault, st, err)
			}
			if err := f.ApplyZone("a", fleet.Fault{Kind: fleet.Restore}); err != nil {
				t.Fatalf("restore: %v", err)
			}
			if st, _, err := get(c, url); err != nil || st != 200 {
				t.Errorf("after restore: %d %v, want 200", st, err)
			}
		})
	}
}

func wantTimeout(d time.Duration) func(*testing.T, int, error, time.Duration) {
	return func(t *testing.T, status int, err error, took time.Duration) {
		t.Helper()
		if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			t.Fatalf("got %d %v, want a client timeout", status, err)
		}
		if took < d {
			t.Errorf("failed after %v, before the client timeout %v", took, d)
		}
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func wantResetBeforeHeaders(t *testing.T, status int, err error, _ time.Duration) {
	t.Helper()
	if status != 0 || err == nil {
		t.Fatalf("got status %d err %v, want no response at all", status, err)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want a connection reset", err)
	}
}

func wantRefused(t *testing.T, status int, err error, _ time.Duration) {
	t.Helper()
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("got %d %v, want connection refused", status, err)
	}
}

func TestParseFault(t *testing.T) {
	tests := []struct {
		in      string
		want    fleet.Fault
		wantErr string
	}{
		{"blackhole", fleet.Fault{Kind: fleet.Blackhole}, ""},
		{"slow: 500ms", fleet.Fault{Kind: fleet.Slow, Delay: 500 * time.Millisecond}, ""},
		{"slow 1s", fleet.Fault{Kind: fleet.Slow, Delay: time.Second}, ""},
		{"status: 503", fleet.Fault{Kind: fleet.Status, Status: 503}, ""},
		{"reset_before_headers", fleet.Fault{Kind: fleet.ResetBeforeHeaders}, ""},
		{"reset_before_headers: 1", fleet.Fault{}, "takes no argument"},
		{"status: 99", fleet.Fault{}, "code 100-599"},
		{"slow: soon", fleet.Fault{}, "positive duration"},
		{"refuse: now", fleet.Fault{}, "takes no argument"},
		{"explode", fleet.Fault{}, "want blackhole"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := fleet.ParseFault(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseFault(%q) error %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseFault(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestCloseStopsEverything holds requests in every fault that blocks, then
// closes the fleet: every goroutine it started must end.
func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	f, err := fleet.Start(fleet.Options{Zones: []string{"a", "b"}, PerZone: 1, Latency: fleet.Latency{Fixed: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ApplyZone("a", fleet.Fault{Kind: fleet.Blackhole}); err != nil {
		t.Fatal(err)
	}
	if err := f.ApplyZone("b", fleet.Fault{Kind: fleet.Slow, Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	c := &http.Client{Transport: tr, Timeout: 200 * time.Millisecond}
	for _, b := range f.Backends() {
		if _, _, err := get(c, "http://"+b.Addr+"/"); err == nil {
			t.Errorf("%s answered during its fault", b.Name)
		}
	}
	tr.CloseIdleConnections()
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.ApplyZone("a", fleet.Fault{Kind: fleet.Restore}); err == nil {
		t.Error("applying a fault to a closed fleet must fail")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline above
	}
}
