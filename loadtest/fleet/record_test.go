package fleet_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// eventually polls cond until it holds or the deadline passes: what it
// waits for happens on the backend's own goroutines.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, bounded by the deadline above
	}
}

func startIDFleet(t *testing.T) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Start(fleet.Options{Zones: []string{"a", "b"}, PerZone: 1, IDHeader: "X-Load-Id"})
	if err != nil {
		t.Fatalf("starting fleet: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// rawConn is one keep-alive HTTP/1.1 connection written by hand, so a
// test controls exactly which bytes go on which connection.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(t *testing.T, method, path, id string) {
	t.Helper()
	body := ""
	if method == http.MethodPost {
		body = "0123456789"
	}
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nX-Load-Id: %s\r\nContent-Length: %d\r\n\r\n%s", method, path, id, len(body), body)
	if _, err := io.WriteString(r.c, req); err != nil {
		t.Fatalf("writing request: %v", err)
	}
}

// read reads one response by deadline, returning its status.
func (r *rawConn) read(d time.Duration) (int, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// TestHitsAndDeliveries checks what a backend records: arrivals by time,
// health checks apart, and IDs per method across the fleet.
func TestHitsAndDeliveries(t *testing.T) {
	f := startIDFleet(t)
	a, b := f.Backend("a-1"), f.Backend("b-1")
	t0 := time.Now()
	ca, cb := dialRaw(t, a.Addr), dialRaw(t, b.Addr)
	for _, step := range []struct {
		c            *rawConn
		method, path string
		id           string
	}{
		{ca, "POST", "/orders", "tok-1"},
		{cb, "POST", "/orders", "tok-1"}, // the same POST on another backend: delivered twice
		{ca, "POST", "/orders", "tok-1"}, // and a third time
		{ca, "GET", "/", "tok-2"},
		{cb, "GET", "/", "tok-2"},
		{ca, "GET", "/", "tok-3"},
		{ca, "GET", "/", "other-id"},
		{ca, "GET", fleet.HealthPath, "tok-4"},
	} {
		step.c.send(t, step.method, step.path, step.id)
		if st, err := step.c.read(time.Second); err != nil || st != 200 {
			t.Fatalf("%s %s: %d %v", step.method, step.path, st, err)
		}
	}
	t1 := time.Now().Add(fleet.HitBucket)
	if got := a.HitsBetween(t0.Add(-fleet.HitBucket), t1); got != 5 {
		t.Errorf("a-1 hits %d, want 5 (the health check apart)", got)
	}
	if got := fleet.HitsBetween(f.Backends(), t0.Add(-fleet.HitBucket), t1); got != 7 {
		t.Errorf("fleet hits %d, want 7", got)
	}
	if got := a.HitsBetween(t1, t1.Add(time.Hour)); got != 0 {
		t.Errorf("a-1 hits after the requests %d, want 0", got)
	}
	if a.HealthChecks() != 1 {
		t.Errorf("health checks %d, want 1", a.HealthChecks())
	}
	d := f.Deliveries()
	if want := (fleet.Delivery{IDs: 1, Duplicated: 1, Extra: 2}); d["POST"] != want {
		t.Errorf("POST deliveries %+v, want %+v", d["POST"], want)
	}
	if want := (fleet.Delivery{IDs: 3, Duplicated: 1, Extra: 1}); d["GET"] != want {
		t.Errorf("GET deliveries %+v, want %+v", d["GET"], want)
	}
}

// TestBlackholeCountsOnArrival sends requests into a blackhole, on a new
// and on a keep-alive connection: each counts when it arrives, though no
// handler runs until restore, and not a second time when one does.
func TestBlackholeCountsOnArrival(t *testing.T) {
	f := startIDFleet(t)
	a := f.Backend("a-1")
	warm := dialRaw(t, a.Addr)
	warm.send(t, "GET", "/", "tok-1")
	if st, err := warm.read(time.Second); err != nil || st != 200 {
		t.Fatalf("warm-up: %d %v", st, err)
	}
	if err := f.ApplyZone("a", fleet.Fault{Kind: fleet.Blackhole}); err != nil {
		t.Fatal(err)
	}
	fresh := dialRaw(t, a.Addr)
	fresh.send(t, "POST", "/orders", "tok-2")
	warm.send(t, "POST", "/orders", "tok-3")
	for _, c := range []*rawConn{fresh, warm} {
		if _, err := c.read(100 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a blackholed backend answered: %v", err)
		}
	}
	eventually(t, "two POSTs counted during the blackhole", func() bool { return f.Deliveries()["POST"].IDs == 2 })
	if got := a.HitsBetween(time.Time{}, time.Now().Add(fleet.HitBucket)); got != 3 {
		t.Errorf("hits %d, want 3: the warm-up and two during the blackhole", got)
	}
	restoredAt := time.Now().Add(fleet.HitBucket)
	if err := f.ApplyZone("a", fleet.Fault{Kind: fleet.Restore}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*rawConn{fresh, warm} {
		if st, err := c.read(time.Second); err != nil || st != 200 {
			t.Fatalf("after restore: %d %v, want the held request answered", st, err)
		}
	}
	if d := f.Deliveries()["POST"]; d.IDs != 2 || d.Extra != 0 {
		t.Errorf("POST deliveries after restore %+v: the held requests were counted twice", d)
	}
	if got := a.HitsBetween(restoredAt, time.Now().Add(time.Hour)); got != 0 {
		t.Errorf("%d hits counted at restore, want them at their arrival", got)
	}
}

// TestResetBeforeHeadersReadsTheRequest checks that the fault reads the
// whole request, counts it, and answers not one byte.
func TestResetBeforeHeadersReadsTheRequest(t *testing.T) {
	f := startIDFleet(t)
	a := f.Backend("a-1")
	if err := f.ApplyZone("a", fleet.Fault{Kind: fleet.ResetBeforeHeaders}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, a.Addr)
	c.send(t, "POST", "/orders", "tok-1")
	_ = c.c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.br.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %d bytes, error %v; want a reset before any byte", n, err)
	}
	if d := f.Deliveries()["POST"]; d.IDs != 1 || a.Requests() != 1 {
		t.Errorf("deliveries %+v, requests %d: want the POST received once", d, a.Requests())
	}
}

func TestSleepPath(t *testing.T) {
	f := startIDFleet(t)
	addr := "http://" + f.Backend("a-1").Addr
	tests := []struct {
		query   string
		status  int
		atLeast time.Duration
	}{
		{"?d=300ms", 200, 300 * time.Millisecond},
		{"?d=soon", 400, 0},
		{"?d=2h", 400, 0},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			st, took, err := get(http.DefaultClient, addr+fleet.SleepPath+tc.query)
			if err != nil || st != tc.status || took < tc.atLeast || took > tc.atLeast+time.Second {
				t.Errorf("got %d %v in %v, want %d after %v", st, err, took, tc.status, tc.atLeast)
			}
		})
	}
}
