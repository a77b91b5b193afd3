package balancer

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// queue holds requests waiting for capacity in FIFO order, as HAProxy's
// queue does. Whoever frees capacity (a Release, a backend coming up or
// back from a drain, a new set or new settings) serves the line under the
// queue's lock: it picks for the waiters in order and hands each its
// backend, so a waiter never has to race a newcomer for the slot it was
// woken for, and newcomers join the back of the line while anyone waits.
//
// The fast paths, Pick and Release with nobody waiting, cost one atomic
// load each.
type queue struct {
	waiting atomic.Int32 // len(line), readable without the lock
	mu      sync.Mutex
	line    []*waiter
}

// waiter is one queued Pick.
type waiter struct {
	tried Tried      // a copy, so the caller's Tried never leaves its stack
	key   Key        // a copy of the caller's, if keyed
	keyed bool       // the caller brought a Key
	grant chan grant // buffered 1: the outcome, sent once under queue.mu
}

type grant struct {
	l   Lease
	err error
}

// wake serves the line if anyone waits.
func (p *Pool) wake() {
	q := &p.q
	if q.waiting.Load() == 0 {
		return
	}
	q.mu.Lock()
	p.serveLocked()
	q.mu.Unlock()
}

// serveLocked hands capacity to waiters in FIFO order. A waiter that finds
// no capacity keeps its place; a retry (which may not use the backends it
// tried) does not hold up the requests behind it, but a fresh request that
// finds nothing means nobody behind it can either. A waiter whose pick
// fails for another reason (no backend at all) gets that error at once.
// The caller holds q.mu.
func (p *Pool) serveLocked() {
	q := &p.q
	o := p.opts()
	off := o.QueueSize <= 0 || o.QueueTimeout <= 0
	rng := prng{src: p.rnd}
	kept := q.line[:0]
	blocked := false
	for _, w := range q.line {
		if blocked {
			kept = append(kept, w)
			continue
		}
		if off { // the queue was switched off by Configure
			w.grant <- grant{err: ErrNoCapacity}
			continue
		}
		var tried *Tried
		if w.tried.Len() > 0 {
			tried = &w.tried
		}
		var key *Key
		if w.keyed {
			key = &w.key
		}
		l, err := p.pick(tried, key, &rng)
		if err == ErrNoCapacity {
			kept = append(kept, w)
			blocked = tried == nil
			continue
		}
		w.grant <- grant{l, err}
	}
	clear(q.line[len(kept):])
	q.line = kept
	q.waiting.Store(int32(len(kept)))
}

// wait queues the request until it is served, the queue timeout passes or
// ctx ends.
func (q *queue) wait(ctx context.Context, p *Pool, tried *Tried, key *Key, o *Options) (Lease, error) {
	w := &waiter{grant: make(chan grant, 1)}
	if tried != nil {
		w.tried = *tried
	}
	if key != nil {
		w.key, w.keyed = *key, true
	}
	q.mu.Lock()
	if len(q.line) >= o.QueueSize {
		q.mu.Unlock()
		return Lease{}, ErrNoCapacity
	}
	q.line = append(q.line, w)
	q.waiting.Store(int32(len(q.line)))
	// Capacity freed between the caller's pick and now found nobody
	// waiting; serve it now, in order.
	p.serveLocked()
	q.mu.Unlock()

	timer := time.NewTimer(o.QueueTimeout)
	defer timer.Stop()
	select {
	case g := <-w.grant:
		return g.l, g.err
	case <-timer.C:
		return q.leave(w, nil)
	case <-ctx.Done():
		return q.leave(w, ctx.Err())
	}
}

// leave takes w off the line after its timeout (err nil) or its context's
// end. If it was served in the meantime, a timed-out waiter keeps the
// backend it got; a cancelled one gives it back.
func (q *queue) leave(w *waiter, err error) (Lease, error) {
	q.mu.Lock()
	if i := slices.Index(q.line, w); i >= 0 {
		q.line = slices.Delete(q.line, i, i+1)
		q.waiting.Store(int32(len(q.line)))
		q.mu.Unlock()
		if err == nil {
			err = ErrNoCapacity
		}
		return Lease{}, err
	}
	q.mu.Unlock()
	g := <-w.grant // sent before w left the line
	if err == nil {
		return g.l, g.err
	}
	if g.l.b != nil {
		g.l.Release()
	}
	return Lease{}, err
}
