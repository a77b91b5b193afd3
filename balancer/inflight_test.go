package balancer

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestInFlightIsExactUnderConcurrency: picks and releases from many
// goroutines at once leave each backend's in-flight count equal to the
// leases held on it, at every step where the test stops them, and zero at
// the end.
func TestInFlightIsExactUnderConcurrency(t *testing.T) {
	const workers, rounds, perRound = 8, 50, 6
	p := testPool(Options{LocalZone: "a"})
	p.Update(spread(6, 2))
	held := make([][]Lease, workers)
	for range rounds {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				// Release what the last round held, then hold new ones.
				releaseAll(held[w])
				held[w] = held[w][:0]
				for range perRound {
					l, err := p.Pick(t.Context(), nil)
					if err != nil {
						t.Error(err)
						return
					}
					held[w] = append(held[w], l)
				}
			})
		}
		wg.Wait()
		want := map[*Backend]int64{}
		for _, ls := range held {
			for _, l := range ls {
				want[l.Backend()]++
			}
		}
		var total int64
		for _, b := range p.Backends() {
			if got := b.InFlight(); got != want[b] {
				t.Fatalf("%s: %d in flight, %d leases held on it", b.Address(), got, want[b])
			}
			total += b.InFlight()
		}
		if total != workers*perRound {
			t.Fatalf("%d in flight over the pool, want %d", total, workers*perRound)
		}
	}
	for _, ls := range held {
		releaseAll(ls)
	}
	for _, b := range p.Backends() {
		if n := b.InFlight(); n != 0 {
			t.Errorf("%s: %d in flight after every release", b.Address(), n)
		}
	}
}

// TestMaxConnsIsExactUnderConcurrency: many goroutines picking at once on
// capped backends, without a queue, get exactly as many leases as the caps
// add up to; the rest find no capacity.
func TestMaxConnsIsExactUnderConcurrency(t *testing.T) {
	const workers, tries = 16, 20
	p := testPool(Options{LocalZone: "a"})
	p.Update([]Spec{spec(1, 1, 1).withMax(3), spec(1, 2, 1).withMax(5), spec(2, 1, 1).withMax(2)})
	var (
		mu   sync.Mutex
		held []Lease
		full atomic.Int64
		wg   sync.WaitGroup
	)
	start := make(chan struct{})
	for range workers {
		wg.Go(func() {
			<-start
			for range tries {
				l, err := p.Pick(t.Context(), nil)
				if errors.Is(err, ErrNoCapacity) {
					full.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				held = append(held, l)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(held) != 10 {
		t.Errorf("%d leases granted, want the caps' sum 10", len(held))
	}
	if got := full.Load(); got != workers*tries-10 {
		t.Errorf("%d picks found no capacity, want %d", got, workers*tries-10)
	}
	for _, b := range p.Backends() {
		if got, want := b.InFlight(), int64(b.Spec().MaxConns); got != want {
			t.Errorf("%s: %d in flight, want its max_conns %d", b.Address(), got, want)
		}
	}
	releaseAll(held)
}

// TestWatchesFromManyGoroutines: requests on one backend register and
// remove their watches from many goroutines at once, on the backend's one
// list; when the backend goes out every watch still registered fires
// exactly once, and none that was removed does.
func TestWatchesFromManyGoroutines(t *testing.T) {
	const workers = 32
	p := testPool(Options{})
	p.Update([]Spec{spec(1, 1, 1)})
	leases := make([]Lease, workers)
	watches := make([]Watch, workers)
	fired := make([]atomic.Int32, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			l, err := p.Pick(t.Context(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			leases[i] = l
			watches[i].W = watcherFunc(func() { fired[i].Add(1) })
			l.Watch(&watches[i])
			if i%2 == 1 {
				l.Unwatch(&watches[i])
			}
		})
	}
	wg.Wait()
	p.Backends()[0].SetState(StateDown)
	for i := range workers {
		want := int32(0)
		if i%2 == 0 {
			want = 1
		}
		if got := fired[i].Load(); got != want {
			t.Errorf("watch %d fired %d times, want %d", i, got, want)
		}
		leases[i].Unwatch(&watches[i]) // after firing: nothing to undo
		leases[i].Release()
	}
	if n := p.Backends()[0].InFlight(); n != 0 {
		t.Errorf("%d in flight after every release", n)
	}
}

// TestBusyTieGoesToProgress: of two equally busy backends, a pick goes to
// the one whose requests ended most recently. A backend that hangs with
// one request stuck on it loses every such tie to a sibling that serves
// (without this, half of them), and it still wins when strictly less busy.
func TestBusyTieGoesToProgress(t *testing.T) {
	for seed := range uint64(20) {
		p := NewPool("web", Options{LocalZone: "a"}, WithRand(seeded(seed)))
		p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 1)})
		stuck := hold(t, p, 1)[0] // on the backend that hangs from now on
		hung := stuck.Backend()
		// The sibling, idle, takes the next requests; one of them ends.
		done := hold(t, p, 1)[0]
		done.Release()
		serving := hold(t, p, 1)[0]
		if serving.Backend() == hung || done.Backend() == hung {
			t.Fatal("a pick went to the busier backend")
		}
		for i := range 50 {
			// Both hold one request; only the sibling ends any.
			l := hold(t, p, 1)[0]
			if l.Backend() == hung {
				t.Fatalf("seed %d, pick %d: an equally busy hung backend won a tie against one that serves", seed, i)
			}
			l.Release()
		}
		serving.Release()
		if l := hold(t, p, 1)[0]; l.Backend() == hung {
			t.Fatalf("seed %d: the idle sibling lost to the busy hung backend", seed)
		} else {
			l.Release()
		}
		stuck.Release()
	}
}
