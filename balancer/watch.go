package balancer

import "sync"

// Watch is one request's wish to hear when the backend it is counted on
// stops taking new requests: ejected, down, drained or its zone drained.
// When health takes a backend out, the proxy moves every attempt on it that
// still waits for its response and could be replayed to another backend at
// once, instead of letting each wait for its own timer. A Watch fires at
// most once; it is registered with Lease.Watch and removed with
// Lease.Unwatch. It lives inside its owner's state (no allocation) and must
// not be copied while registered.
type Watch struct {
	// W is told when the backend goes out, on the goroutine that took it
	// out, after the pool's locks are released. It must return quickly;
	// the watch is already gone, so Unwatch is not needed.
	W Watcher

	prev, next *Watch
	list       *watchList
}

// Watcher is what a Watch tells. An interface rather than a func, so the
// watcher's own state is the receiver and registering allocates nothing.
type Watcher interface {
	BackendOut()
}

// watchList is the registered watches of one backend: a doubly linked
// list under its own lock. Registering and unregistering take only this
// lock, never the pool's; the backend going out empties the list under it
// and tells the watchers after it is released.
type watchList struct {
	mu   sync.Mutex
	head *Watch
}

func (l *watchList) add(w *Watch) {
	l.mu.Lock()
	w.list, w.prev, w.next = l, nil, l.head
	if l.head != nil {
		l.head.prev = w
	}
	l.head = w
	l.mu.Unlock()
}

func (l *watchList) remove(w *Watch) {
	l.mu.Lock()
	if w.list == l {
		l.unlinkLocked(w)
	}
	l.mu.Unlock()
}

func (l *watchList) unlinkLocked(w *Watch) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.list = nil, nil, nil
}

// takeWatches removes every watch registered on the backend and returns
// their watchers, to be told once no lock is held.
func (b *Backend) takeWatches() []Watcher {
	var out []Watcher
	l := &b.watches
	l.mu.Lock()
	for w := l.head; w != nil; {
		next := w.next
		if w.W != nil {
			out = append(out, w.W)
		}
		w.prev, w.next, w.list = nil, nil, nil
		w = next
	}
	l.head = nil
	l.mu.Unlock()
	return out
}

// wentOut tells the backend's watchers it stopped taking requests. Callers
// run it after releasing the pool's lock.
func (b *Backend) wentOut() {
	for _, w := range b.takeWatches() {
		w.BackendOut()
	}
}
