package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLifetimeEndsOnce(t *testing.T) {
	l := startLifetime(context.Background(), 0)
	var aborts atomic.Int32
	l.OnEnd(func() { aborts.Add(1) })
	if l.Cause() != nil {
		t.Fatalf("cause %v before any end", l.Cause())
	}
	l.end(errTooManyInformational)
	l.end(errPerTryTimeout)
	l.finish()
	if got := l.Cause(); got != errTooManyInformational {
		t.Fatalf("cause %v, want the first end's", got)
	}
	if n := aborts.Load(); n != 1 {
		t.Fatalf("abort ran %d times, want once", n)
	}
	// Set after the end, an abort runs at once and clear says it ran.
	ran := false
	l.OnEnd(func() { ran = true })
	if !ran {
		t.Fatal("an abort set after the end did not run")
	}
	if l.Clear() {
		t.Fatal("clear after the end reports the lifetime running")
	}
}

func TestLifetimeClearKeepsAbortFromRunning(t *testing.T) {
	l := startLifetime(context.Background(), 0)
	ran := false
	l.OnEnd(func() { ran = true })
	if !l.Clear() {
		t.Fatal("clear while running reports it ended")
	}
	l.finish()
	if ran {
		t.Fatal("a cleared abort ran at the end")
	}
	if l.Cause() != errAttemptDone {
		t.Fatalf("cause after finish = %v", l.Cause())
	}
}

func TestLifetimeEndsWithTheClient(t *testing.T) {
	gone := errors.New("client went away")
	ctx, cancel := context.WithCancelCause(context.Background())
	l := startLifetime(ctx, time.Hour)
	aborted := make(chan struct{})
	l.OnEnd(func() { close(aborted) })
	cancel(gone)
	select {
	case <-aborted:
	case <-time.After(5 * time.Second):
		t.Fatal("the client's end did not abort the attempt")
	}
	if l.Cause() != gone {
		t.Fatalf("cause %v, want the client's", l.Cause())
	}
	if l.headArrived() {
		t.Fatal("the per-try timer reports firing, though it never did")
	}
	l.finish()
}

func TestLifetimePerTryTimer(t *testing.T) {
	l := startLifetime(context.Background(), time.Millisecond)
	aborted := make(chan struct{})
	l.OnEnd(func() { close(aborted) })
	select {
	case <-aborted:
	case <-time.After(5 * time.Second):
		t.Fatal("the per-try timer did not abort the attempt")
	}
	if !l.headArrived() {
		t.Fatal("headArrived does not report the timer that fired")
	}
	if l.Cause() != errPerTryTimeout {
		t.Fatalf("cause %v, want the per-try timeout", l.Cause())
	}
	l.finish()
}

// A TLS backend that accepts and never answers the handshake holds a
// request only until its per-try time: a hedge to another zone answers,
// and the hung handshake's connection is closed once it does.
func TestPerTryTimeoutHedgesAHungHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // reads the hello, answers nothing, notes the close
				_, _ = io.Copy(io.Discard, c)
				c.Close()
				closed <- struct{}{}
			}()
		}
	}()
	good := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	good.Listener.Close()
	if good.Listener, err = net.Listen("tcp", "127.0.2.1:0"); err != nil {
		t.Fatal(err)
	}
	good.StartTLS()
	t.Cleanup(good.Close)

	bp := balancer.NewPool("app", balancer.Options{LocalZone: "a"})
	bp.Update([]balancer.Spec{{Address: ln.Addr().String(), Zone: "a"}, {Address: good.Listener.Addr().String(), Zone: "b"}})
	pc := testPool(&fleet{}, nil)
	pc.Balancer = bp
	pc.Scheme = "https"
	pc.Transport = NewTransport(TransportOptions{TLS: &tls.Config{InsecureSkipVerify: true}, Connect: 20 * time.Second})
	pc.Timeouts = Timeouts{Connect: 20 * time.Second, PerTry: 200 * time.Millisecond, Request: time.Minute}
	px := startProxy(t, pc)

	start := time.Now()
	resp, err := http.Get(px.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != http.StatusOK || string(body) != "ok" || took > 5*time.Second {
		t.Fatalf("status %d %q after %v, want 200 from zone b soon after the 200ms per-try time, long before the 20s connect timeout",
			resp.StatusCode, body, took)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the hung handshake's connection was not closed after the hedge won")
	}
	if got := testutil.ToFloat64(px.metrics.hedges.WithLabelValues("app", "won")); got != 1 {
		t.Errorf("hedges won = %v, want 1", got)
	}
}

// A request whose whole-request time ran out while its buffered body
// arrived gets 504 at once, not an attempt without any time limit.
func TestRequestTimeSpentOnTheBody(t *testing.T) {
	hang := make(chan struct{})
	backend := serveRaw(t, "127.0.1.1", func(c net.Conn) {
		_, _ = readHead(bufio.NewReader(c))
		select {
		case <-hang:
		case <-time.After(6 * time.Second):
		}
	})
	pc := singleBackendPool(backend, "http1")
	pc.Timeouts = Timeouts{Connect: time.Second, PerTry: 2 * time.Second, Request: 200 * time.Millisecond}
	defer close(hang)
	addr := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, pc)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "PUT /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4\r\n\r\nab")
	time.Sleep(400 * time.Millisecond) // the request deadline passes while the body arrives
	_, _ = io.WriteString(c, "cd")
	start := time.Now()
	_ = c.SetDeadline(time.Now().Add(4 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer after %v: %v (the attempt has no time limit)", time.Since(start), err)
	}
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
}
