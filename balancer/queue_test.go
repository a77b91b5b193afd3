package balancer

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// result is what one queued Pick returned.
type result struct {
	b   *Backend
	err error
}

// pickAsync runs Pick in its own goroutine and delivers the result.
func pickAsync(ctx context.Context, p *Pool, tried *Tried) <-chan result {
	ch := make(chan result, 1)
	go func() {
		b, err := p.Pick(ctx, tried)
		ch <- result{b, err}
	}()
	return ch
}

// poll returns the result if it is ready, after every goroutine of the
// bubble has settled.
func poll(t *testing.T, ch <-chan result) (result, bool) {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-ch:
		return r, true
	default:
		return result{}, false
	}
}

func mustPick(t *testing.T, p *Pool, tried *Tried) *Backend {
	t.Helper()
	b, err := p.Pick(context.Background(), tried)
	if err != nil {
		t.Fatalf("pick: %v", err)
	}
	return b
}

// TestQueueRetryWaiterDoesNotBlockLine: a retry at the head of the queue
// that cannot use the freed backend (it tried it already) must not keep a
// fresh request behind it waiting until the timeout.
func TestQueueRetryWaiterDoesNotBlockLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool("web", Options{LocalZone: "a", QueueSize: 10, QueueTimeout: time.Second}, WithRand(seeded(1)))
		p.Update([]Spec{
			{Address: "127.0.1.1:80", Zone: "a", MaxConns: 1},
			{Address: "127.0.1.2:80", Zone: "a", MaxConns: 1},
		})
		first, second := mustPick(t, p, nil), mustPick(t, p, nil)
		var tried Tried
		tried.Add(first)
		retry := pickAsync(t.Context(), p, &tried)
		synctest.Wait()
		fresh := pickAsync(t.Context(), p, nil)
		synctest.Wait()

		first.Release()
		r, ok := poll(t, fresh)
		if !ok {
			t.Fatal("fresh request still queued after a backend it can use freed up")
		}
		if r.err != nil || r.b != first {
			t.Fatalf("fresh request got %v, %v; want %s", r.b, r.err, first.Address())
		}
		if _, ok := poll(t, retry); ok {
			t.Fatal("retry was served although its only untried backend is full")
		}
		second.Release()
		r, ok = poll(t, retry)
		if !ok || r.err != nil || r.b != second {
			t.Fatalf("retry got %v, %v (done %v); want %s", r.b, r.err, ok, second.Address())
		}
		r.b.Release()
		first.Release()
	})
}

// TestQueueNoBackendReachesEveryWaiter: when the set empties, every waiter
// learns it at once instead of the first one only.
func TestQueueNoBackendReachesEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool("web", Options{QueueSize: 10, QueueTimeout: time.Minute}, WithRand(seeded(1)))
		p.Update([]Spec{{Address: "127.0.1.1:80", Zone: "a", MaxConns: 1}})
		held := mustPick(t, p, nil)
		w1 := pickAsync(t.Context(), p, nil)
		w2 := pickAsync(t.Context(), p, nil)
		synctest.Wait()
		p.Update(nil)
		for i, ch := range []<-chan result{w1, w2} {
			r, ok := poll(t, ch)
			if !ok {
				t.Fatalf("waiter %d still queued after the set emptied", i+1)
			}
			if !errors.Is(r.err, ErrNoBackend) {
				t.Fatalf("waiter %d: err %v, want ErrNoBackend", i+1, r.err)
			}
		}
		held.Release()
	})
}
