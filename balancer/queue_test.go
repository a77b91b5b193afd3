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
	l   Lease
	b   *Backend // l.Backend()
	err error
}

// pickAsync runs Pick in its own goroutine and delivers the result.
func pickAsync(ctx context.Context, p *Pool, tried *Tried) <-chan result {
	ch := make(chan result, 1)
	go func() {
		l, err := p.Pick(ctx, tried)
		ch <- result{l, l.Backend(), err}
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

func mustPick(t *testing.T, p *Pool, tried *Tried) Lease {
	t.Helper()
	l, err := p.Pick(context.Background(), tried)
	if err != nil {
		t.Fatalf("pick: %v", err)
	}
	return l
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
		tried.Add(first.Backend())
		retry := pickAsync(t.Context(), p, &tried)
		synctest.Wait()
		fresh := pickAsync(t.Context(), p, nil)
		synctest.Wait()

		first.Release()
		r, ok := poll(t, fresh)
		if !ok {
			t.Fatal("fresh request still queued after a backend it can use freed up")
		}
		if r.err != nil || r.b != first.Backend() {
			t.Fatalf("fresh request got %v, %v; want %s", r.b, r.err, first.Backend().Address())
		}
		if _, ok := poll(t, retry); ok {
			t.Fatal("retry was served although its only untried backend is full")
		}
		second.Release()
		r, ok = poll(t, retry)
		if !ok || r.err != nil || r.b != second.Backend() {
			t.Fatalf("retry got %v, %v (done %v); want %s", r.b, r.err, ok, second.Backend().Address())
		}
		r.l.Release()
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

// queuedPool returns a pool of one backend with max_conns 1, already held.
func queuedPool(t *testing.T, size int, timeout time.Duration) (*Pool, Lease) {
	p := NewPool("web", Options{LocalZone: "a", QueueSize: size, QueueTimeout: timeout}, WithRand(seeded(1)))
	p.Update([]Spec{spec(1, 1, 1).withMax(1)})
	return p, mustPick(t, p, nil)
}

// TestQueueServesInOrder: freed slots go to waiters first come, first served.
func TestQueueServesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, held := queuedPool(t, 10, time.Minute)
		var waiters []<-chan result
		for range 4 {
			waiters = append(waiters, pickAsync(t.Context(), p, nil))
			synctest.Wait() // fixes the arrival order
		}
		if n := p.q.waiting.Load(); n != 4 {
			t.Fatalf("%d waiting, want 4", n)
		}
		cur := held
		for i, ch := range waiters {
			for j, later := range waiters[i:] {
				if _, ok := poll(t, later); ok {
					t.Fatalf("waiter %d served before waiter %d's turn", i+j+1, i+1)
				}
			}
			cur.Release()
			r, ok := poll(t, ch)
			if !ok || r.err != nil {
				t.Fatalf("waiter %d: served %v, err %v", i+1, ok, r.err)
			}
			cur = r.l
		}
		cur.Release()
	})
}

// TestQueueLimits: timeout, bound, cancellation and switching the queue off.
func TestQueueLimits(t *testing.T) {
	t.Run("times out after the queue timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p, held := queuedPool(t, 10, 250*time.Millisecond)
			defer held.Release()
			start := time.Now()
			_, err := p.Pick(t.Context(), nil)
			if !errors.Is(err, ErrNoCapacity) {
				t.Fatalf("err %v, want ErrNoCapacity", err)
			}
			if waited := time.Since(start); waited != 250*time.Millisecond {
				t.Errorf("waited %v, want 250ms", waited)
			}
			if n := p.q.waiting.Load(); n != 0 {
				t.Errorf("%d still waiting", n)
			}
		})
	})
	t.Run("full queue refuses at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p, held := queuedPool(t, 2, time.Minute)
			w1 := pickAsync(t.Context(), p, nil)
			synctest.Wait()
			w2 := pickAsync(t.Context(), p, nil)
			synctest.Wait()
			start := time.Now()
			if _, err := p.Pick(t.Context(), nil); !errors.Is(err, ErrNoCapacity) || time.Since(start) != 0 {
				t.Fatalf("third request: err %v after %v, want ErrNoCapacity at once", err, time.Since(start))
			}
			held.Release()
			r1, ok := poll(t, w1)
			if !ok || r1.err != nil {
				t.Fatalf("first queued request: done %v err %v", ok, r1.err)
			}
			r1.l.Release()
			r2, ok := poll(t, w2)
			if !ok || r2.err != nil {
				t.Fatalf("second queued request: done %v err %v", ok, r2.err)
			}
			r2.l.Release()
		})
	})
	t.Run("cancelled waiter leaves the line", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p, held := queuedPool(t, 10, time.Minute)
			ctx, cancel := context.WithCancel(t.Context())
			gone := pickAsync(ctx, p, nil)
			synctest.Wait()
			next := pickAsync(t.Context(), p, nil)
			synctest.Wait()
			cancel()
			if r, ok := poll(t, gone); !ok || !errors.Is(r.err, context.Canceled) {
				t.Fatalf("cancelled waiter: done %v err %v", ok, r.err)
			}
			held.Release()
			r, ok := poll(t, next)
			if !ok || r.err != nil {
				t.Fatalf("next waiter: done %v err %v", ok, r.err)
			}
			r.l.Release()
			if n := r.b.InFlight(); n != 0 {
				t.Errorf("in flight %d after every release", n)
			}
		})
	})
	t.Run("switching the queue off fails waiters", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p, held := queuedPool(t, 10, time.Minute)
			defer held.Release()
			w := pickAsync(t.Context(), p, nil)
			synctest.Wait()
			p.Configure(Options{LocalZone: "a"})
			if r, ok := poll(t, w); !ok || !errors.Is(r.err, ErrNoCapacity) {
				t.Fatalf("waiter: done %v err %v", ok, r.err)
			}
		})
	})
	t.Run("a backend coming up serves the line", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := NewPool("web", Options{LocalZone: "a", QueueSize: 10, QueueTimeout: time.Minute}, WithRand(seeded(1)))
			p.Update([]Spec{spec(1, 1, 1).withMax(1), spec(1, 2, 1).withMax(1)})
			spare := p.Backend(addr(1, 2))
			spare.SetState(StateDown)
			held := mustPick(t, p, nil)
			defer held.Release()
			w := pickAsync(t.Context(), p, nil)
			if _, ok := poll(t, w); ok {
				t.Fatal("served with every backend full")
			}
			spare.SetState(StateUp)
			r, ok := poll(t, w)
			if !ok || r.err != nil || r.b != spare {
				t.Fatalf("waiter: done %v, %v, %v; want %s", ok, r.b, r.err, spare.Address())
			}
			r.l.Release()
		})
	})
}
