package h1server

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func waitOrFail(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not within 5s", what)
	}
}

func TestRequestContextEnds(t *testing.T) {
	for _, doneFirst := range []bool{false, true} {
		r := newRequestContext()
		var done <-chan struct{}
		if doneFirst {
			done = r.Done()
			select {
			case <-done:
				t.Fatal("Done closed before the context ended")
			default:
			}
		}
		if err := r.Err(); err != nil {
			t.Fatalf("Err before the end = %v", err)
		}
		r.cancel()
		r.cancel() // a second end changes nothing
		if !doneFirst {
			done = r.Done()
		}
		waitOrFail(t, done, "Done after cancel")
		if err := r.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err after the end = %v, want context.Canceled", err)
		}
		if err := context.Cause(r); !errors.Is(err, context.Canceled) {
			t.Fatalf("Cause after the end = %v, want context.Canceled", err)
		}
	}
}

func TestRequestContextAfterFunc(t *testing.T) {
	r := newRequestContext()
	var stoppedRan atomic.Int32
	stopA := r.AfterFunc(func() { stoppedRan.Add(1) })
	ran := make(chan struct{})
	stopB := r.AfterFunc(func() { close(ran) })
	var ranC atomic.Int32
	rc := make(chan struct{})
	r.AfterFunc(func() { ranC.Add(1); close(rc) })
	if !stopA() {
		t.Fatal("stop before the end returned false, want true")
	}
	if stopA() {
		t.Fatal("a second stop returned true")
	}
	r.cancel()
	waitOrFail(t, ran, "a registered function after the end")
	waitOrFail(t, rc, "the other registered function after the end")
	if stopB() {
		t.Fatal("stop after the function started returned true, want false")
	}
	r.cancel()
	time.Sleep(20 * time.Millisecond) // a stopped function would have started with the others
	if n := stoppedRan.Load(); n != 0 {
		t.Fatalf("a stopped function ran %d times", n)
	}
	if n := ranC.Load(); n != 1 {
		t.Fatalf("a registered function ran %d times, want once", n)
	}

	late := make(chan struct{})
	stop := r.AfterFunc(func() { close(late) })
	waitOrFail(t, late, "a function registered after the end")
	if stop() {
		t.Fatal("stop of a function registered after the end returned true")
	}
}

// TestRequestContextUnderPackageContext: contexts made from a request's
// context with package context end with it, and take no goroutine each
// (package context starts one per child for a parent it cannot see into
// and that has no AfterFunc method).
func TestRequestContextUnderPackageContext(t *testing.T) {
	r := newRequestContext()
	before := runtime.NumGoroutine()
	const n = 50
	var children [n]context.Context
	var cancels [n]context.CancelFunc
	for i := range children {
		children[i], cancels[i] = context.WithCancel(r)
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	ran := make(chan struct{})
	stop := context.AfterFunc(r, func() { close(ran) })
	defer stop()
	if grown := runtime.NumGoroutine() - before; grown >= n {
		t.Fatalf("%d goroutines more for %d children", grown, n)
	}
	cancels[0]()
	if r.Err() != nil {
		t.Fatal("a child's end ended the request's context")
	}
	r.cancel()
	for i, c := range children {
		waitOrFail(t, c.Done(), "child "+string(rune('0'+i%10)))
	}
	waitOrFail(t, ran, "context.AfterFunc after the end")
}

// TestRequestContextEndsWithHandler: a function registered during the
// request runs once the handler returns, as on net/http's server; one
// the handler stops does not.
func TestRequestContextEndsWithHandler(t *testing.T) {
	ran := make(chan struct{})
	var stoppedRan atomic.Bool
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		context.AfterFunc(r.Context(), func() { close(ran) })
		stop := context.AfterFunc(r.Context(), func() { stoppedRan.Store(true) })
		stop()
		if r.Context().Err() != nil {
			t.Error("the request's context ended while its handler ran")
		}
	})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c.read("GET")
	waitOrFail(t, ran, "the function registered on the request's context")
	if stoppedRan.Load() {
		t.Fatal("a stopped function ran")
	}
}
