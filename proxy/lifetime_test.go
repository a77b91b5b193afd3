package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestLifetimeEndsOnce(t *testing.T) {
	l := startLifetime(context.Background(), 0)
	var aborts atomic.Int32
	l.onEnd(func() { aborts.Add(1) })
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
	l.onEnd(func() { ran = true })
	if !ran {
		t.Fatal("an abort set after the end did not run")
	}
	if l.clear() {
		t.Fatal("clear after the end reports the lifetime running")
	}
}

func TestLifetimeClearKeepsAbortFromRunning(t *testing.T) {
	l := startLifetime(context.Background(), 0)
	ran := false
	l.onEnd(func() { ran = true })
	if !l.clear() {
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
	l.onEnd(func() { close(aborted) })
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
	l.onEnd(func() { close(aborted) })
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

// A TLS backend that accepts and never answers the handshake holds an
// attempt only until its per-try time, not for the whole connect timeout:
// the lifetime's end cancels the handshake.
func TestPerTryTimeoutCutsAHungHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }() // reads the hello, answers nothing
		}
	}()
	pc := singleBackendPool(ln.Addr().String(), "http1")
	pc.Scheme = "https"
	pc.Transport = NewTransport(TransportOptions{TLS: &tls.Config{InsecureSkipVerify: true}, Connect: 20 * time.Second})
	pc.Timeouts = Timeouts{Connect: 20 * time.Second, PerTry: 200 * time.Millisecond, Request: time.Minute}
	pc.Retry.Attempts = 1
	px := startProxy(t, pc)

	start := time.Now()
	resp, err := http.Get(px.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != http.StatusGatewayTimeout || took > 10*time.Second {
		t.Fatalf("status %d after %v, want 504 at the per-try time, long before the 20 s connect timeout", resp.StatusCode, took)
	}
}
