package balancer

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// queue holds requests waiting for capacity in FIFO order, as HAProxy's
// queue does. Its fast path, Release with nobody waiting, is one atomic load.
// A waiter tries to pick only when handed a turn, so newcomers cannot jump
// the line while anyone waits.
type queue struct {
	waiting atomic.Int32  // waiters in wait(), queued or holding a turn
	turns   atomic.Uint64 // turns handed out; tells a requeued waiter it missed one
	mu      sync.Mutex
	line    []*waiter
}

type waiter struct {
	ready chan struct{} // buffered 1: a turn to try again
}

func (q *queue) init() {}

// wake hands a turn to the oldest waiter, if any. Called whenever capacity
// may have freed: a release, a backend coming up or back from a drain, a new
// set or new settings.
func (p *Pool) wake() {
	q := &p.q
	if q.waiting.Load() == 0 {
		return
	}
	q.turns.Add(1)
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.line) > 0 {
		w := q.line[0]
		q.line = q.line[1:]
		select {
		case w.ready <- struct{}{}:
		default: // cannot happen: a queued waiter holds no turn
		}
	}
}

// wait queues the request until it is handed a turn and finds capacity, the
// queue timeout passes or ctx ends.
func (q *queue) wait(ctx context.Context, p *Pool, tried *Tried, o *Options) (*Backend, error) {
	w := &waiter{ready: make(chan struct{}, 1)}
	q.mu.Lock()
	if len(q.line) >= o.QueueSize {
		q.mu.Unlock()
		return nil, ErrNoCapacity
	}
	q.line = append(q.line, w)
	q.waiting.Add(1)
	q.mu.Unlock()
	defer q.waiting.Add(-1)
	p.wake() // capacity may have freed before we were queued

	timer := time.NewTimer(o.QueueTimeout)
	defer timer.Stop()
	for {
		select {
		case <-w.ready:
		case <-timer.C:
			q.leave(p, w)
			return nil, ErrNoCapacity
		case <-ctx.Done():
			q.leave(p, w)
			return nil, ctx.Err()
		}
		for {
			seen := q.turns.Load()
			b, err := p.pick(tried)
			if err != ErrNoCapacity {
				if err == nil {
					p.wake() // more may be free: the next waiter tries too
				}
				return b, err
			}
			q.mu.Lock()
			q.line = slices.Insert(q.line, 0, w)
			q.mu.Unlock()
			if q.turns.Load() == seen || !q.remove(w) {
				break // wait for the next turn (or one already sent to us)
			}
			// A turn went out while we were off the line: try again.
		}
	}
}

// remove takes w off the line and reports whether it was there.
func (q *queue) remove(w *waiter) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if i := slices.Index(q.line, w); i >= 0 {
		q.line = slices.Delete(q.line, i, i+1)
		return true
	}
	return false
}

// leave takes w off the line for good; a turn it was handed but cannot use
// passes to the next waiter.
func (q *queue) leave(p *Pool, w *waiter) {
	if q.remove(w) {
		return
	}
	select {
	case <-w.ready:
		p.wake()
	default:
	}
}
