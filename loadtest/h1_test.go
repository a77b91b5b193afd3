package loadtest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// TestH1Framing runs the generator's own HTTP/1.1 client against servers
// that frame responses every way HTTP/1.1 allows.
func TestH1Framing(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		handler http.HandlerFunc
		status  string
	}{
		{"content-length", "GET", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }, "200"},
		{"chunked", "GET", func(w http.ResponseWriter, r *http.Request) {
			for range 3 {
				w.Write([]byte(strings.Repeat("x", 5000)))
				w.(http.Flusher).Flush()
			}
		}, "200"},
		{"connection close", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		}, "200"},
		{"no content", "DELETE", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }, "204"},
		{"head", "HEAD", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Content-Length", "100") }, "200"},
		{"post body", "POST", func(w http.ResponseWriter, r *http.Request) {
			b := make([]byte, 10)
			n, _ := r.Body.Read(b)
			if string(b[:n]) != "payload" {
				w.WriteHeader(400)
			}
		}, "200"},
		{"error status", "GET", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) }, "503"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			res := mustRun(t, Options{URL: srv.URL + "/p?q=1", Method: tc.method, Body: []byte("payload"), Concurrency: 2, Requests: 30, Timeout: 2 * time.Second})
			if res.Status[tc.status] != 30 || len(res.Errors) != 0 {
				t.Errorf("status %v errors %v, want 30 × %s", res.Status, res.Errors, tc.status)
			}
		})
	}
}

// TestH1IdleClose checks that a keep-alive connection the server closed
// while idle is redialed, not reported as a failure.
func TestH1IdleClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { // answers two requests per connection, then closes without a Connection: close
				defer c.Close()
				br := bufio.NewReader(c)
				for range 2 {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				}
			}()
		}
	}()
	res := mustRun(t, Options{URL: "http://" + ln.Addr().String() + "/", Concurrency: 1, Requests: 10, Timeout: time.Second})
	if res.Succeeded != 10 {
		t.Errorf("succeeded %d of 10: errors %v", res.Succeeded, res.Errors)
	}
	if got := conns.Load(); got < 5 {
		t.Errorf("%d connections for 10 requests at 2 per connection", got)
	}
}

// TestFleetFaultsThroughGenerator classifies each fleet fault as the
// generator sees it.
func TestFleetFaultsThroughGenerator(t *testing.T) {
	tests := []struct {
		fault     string
		wantClass string
		wantCode  string
	}{
		{"blackhole", "timeout", ""},
		{"refuse", "refused", ""},
		{"reset", "reset", ""},
		{"status: 503", "", "503"},
	}
	for _, tc := range tests {
		t.Run(tc.fault, func(t *testing.T) {
			fl, err := fleet.Start(fleet.Options{Zones: []string{"a"}, PerZone: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			f, _ := fleet.ParseFault(tc.fault)
			if err := fl.ApplyZone("a", f); err != nil {
				t.Fatal(err)
			}
			res := mustRun(t, Options{URL: "http://" + fl.Zone("a")[0].Addr + "/", Concurrency: 2, Requests: 6, Timeout: 300 * time.Millisecond})
			if res.Failed != 6 {
				t.Errorf("failed %d of 6", res.Failed)
			}
			if tc.wantClass != "" && res.Errors[tc.wantClass] != 6 {
				t.Errorf("errors %v, want 6 %s", res.Errors, tc.wantClass)
			}
			if tc.wantCode != "" && res.Status[tc.wantCode] != 6 {
				t.Errorf("status %v, want 6 × %s", res.Status, tc.wantCode)
			}
		})
	}
}

func BenchmarkH1Request(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend-Zone", "z")
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	b.ReportAllocs()
	res, err := Run(b.Context(), Options{URL: srv.URL, Concurrency: 1, Requests: int64(b.N)})
	if err != nil || res.Succeeded != int64(b.N) {
		b.Fatalf("%v %+v", err, res.Errors)
	}
}

// TestH1HotLoopAllocations holds the h1 hot path (send, parse, record) to
// no allocation per request, against a canned-response server that itself
// allocates nothing per request.
func TestH1HotLoopAllocations(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o, err := Options{URL: "http://" + ln.Addr().String() + "/"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	req, err := newH1Request(o)
	if err != nil {
		t.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-Backend: b1\r\nX-Backend-Zone: z1\r\n\r\nhello world\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, len(req.wire))
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}()
	conn := newH1Conn(req, time.Second)
	sh := newShard()
	ctx := t.Context()
	once := func() {
		out := outcome{}
		if err := conn.do(ctx, time.Now().Add(time.Second), req, requestID{}, &out); err != nil || out.status != 200 || out.zone != "z1" {
			t.Fatalf("request: %v %+v", err, out)
		}
		out.latency = time.Millisecond
		sh.record(&out)
	}
	once() // dial, first histogram bucket, interned names
	if allocs := testing.AllocsPerRun(200, once); allocs > 0 {
		t.Errorf("%.1f allocations per request, want 0", allocs)
	}
	conn.close()
	<-done
}

// keyCounter counts requests per Idempotency-Key.
type keyCounter struct {
	mu   sync.Mutex
	keys map[string]int
}

func (k *keyCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[r.Header.Get("Idempotency-Key")]++
}

// TestIDHeader sends a unique Idempotency-Key on every POST and checks,
// on the server's side, that each arrived exactly once: through the
// generator's own h1 client to a fleet backend, and through net/http's h2c.
func TestIDHeader(t *testing.T) {
	t.Run("h1 to a fleet backend", func(t *testing.T) {
		fl, err := fleet.Start(fleet.Options{Zones: []string{"a"}, PerZone: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		res := mustRun(t, Options{URL: "http://" + fl.Zone("a")[0].Addr + "/", Method: "POST", Body: []byte("{}"), IDHeader: "Idempotency-Key", Concurrency: 4, Requests: 200})
		keys := fl.Keys()
		if res.Succeeded != 200 || len(keys) != 200 {
			t.Fatalf("succeeded %d, %d distinct keys; want 200 each", res.Succeeded, len(keys))
		}
		for k, n := range keys {
			if n != 1 {
				t.Errorf("key %s delivered %d times", k, n)
			}
		}
		if got := fl.Zone("a")[0].Methods()["POST"]; got != 200 {
			t.Errorf("%d POSTs received, want 200", got)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		kc := &keyCounter{keys: map[string]int{}}
		srv := httptest.NewUnstartedServer(kc)
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Start()
		defer srv.Close()
		res := mustRun(t, Options{URL: srv.URL, Protocol: H2, Method: "POST", Body: []byte("{}"), IDHeader: "Idempotency-Key", Concurrency: 4, Requests: 200})
		kc.mu.Lock()
		defer kc.mu.Unlock()
		if res.Succeeded != 200 || len(kc.keys) != 200 || kc.keys[""] != 0 {
			t.Errorf("succeeded %d, %d distinct keys; want 200 each", res.Succeeded, len(kc.keys))
		}
	})
}
