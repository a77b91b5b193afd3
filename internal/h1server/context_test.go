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

// countingWatcher counts the times it is told and closes told the first.
type countingWatcher struct {
	n    atomic.Int32
	told chan struct{}
}

func newCountingWatcher() *countingWatcher {
	return &countingWatcher{told: make(chan struct{})}
}

func (w *countingWatcher) ContextDone() {
	if w.n.Add(1) == 1 {
		close(w.told)
	}
}

func TestRequestContextWatch(t *testing.T) {
	r := newRequestContext()
	a, b, c := newCountingWatcher(), newCountingWatcher(), newCountingWatcher()
	r.Watch(a)
	r.Watch(b)
	r.Watch(c)
	if !r.Unwatch(b) {
		t.Fatal("Unwatch before the end returned false, want true")
	}
	if r.Unwatch(b) {
		t.Fatal("a second Unwatch returned true")
	}
	r.cancel()
	waitOrFail(t, a.told, "a watcher after the end")
	waitOrFail(t, c.told, "the other watcher after the end")
	if r.Unwatch(a) {
		t.Fatal("Unwatch after the watcher was told returned true, want false")
	}
	r.cancel()
	time.Sleep(20 * time.Millisecond) // a removed watcher would have been told with the others
	if n := b.n.Load(); n != 0 {
		t.Fatalf("a removed watcher was told %d times", n)
	}
	if n, m := a.n.Load(), c.n.Load(); n != 1 || m != 1 {
		t.Fatalf("watchers told %d and %d times, want once each", n, m)
	}

	late := newCountingWatcher()
	r.Watch(late)
	waitOrFail(t, late.told, "a watcher registered after the end")
	if r.Unwatch(late) {
		t.Fatal("Unwatch of a watcher registered after the end returned true")
	}
}

// TestRequestContextWatchAllocatesNothing: the point of Watch over
// AfterFunc, for the proxy that watches its client on every attempt.
func TestRequestContextWatchAllocatesNothing(t *testing.T) {
	r := newRequestContext()
	w := newCountingWatcher()
	if n := testing.AllocsPerRun(100, func() {
		r.Watch(w)
		r.Unwatch(w)
	}); n != 0 {
		t.Fatalf("Watch and Unwatch allocated %v times a run, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		r.AfterFunc(func() {})()
	}); n == 0 {
		t.Fatal("AfterFunc allocated nothing: the comparison above measures nothing")
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
