package balancer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// A reload that replaces every backend must never leave a pick with no
// backend: the new set is visible before the old one's backends are marked
// removed.
func TestUpdateSwappingWholeSetsNeverEmpties(t *testing.T) {
	setA := []Spec{{Address: "127.0.1.1:80", Zone: "a"}, {Address: "127.0.2.1:80", Zone: "b"}}
	setB := []Spec{{Address: "127.0.2.2:80", Zone: "b"}, {Address: "127.0.3.1:80", Zone: "c"}}
	p := NewPool("web", Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.5})
	p.Update(setA)

	var stop atomic.Bool
	var failures, picks atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				b, err := p.Pick(context.Background(), nil)
				picks.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprint(err))
					continue
				}
				b.Release()
			}
		}()
	}
	for i := range 2000 {
		if i%2 == 0 {
			p.Update(setB)
		} else {
			p.Update(setA)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d picks failed across 2000 whole-set swaps (first: %v)", n, picks.Load(), firstErr.Load())
	}
}
