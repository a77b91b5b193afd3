package balancer

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestConcurrentPickReleaseUpdate runs picks, releases, set updates, health
// flips, drains and reconfiguration at once, for a bounded number of
// rounds; run it with -race. Afterwards every request is released, nothing
// is left retiring and the zone tallies match a recount; with max_conns,
// the cap was never exceeded.
func TestConcurrentPickReleaseUpdate(t *testing.T) {
	t.Run("max_conns", func(t *testing.T) { concurrentPicks(t, true) })
	t.Run("uncapped", func(t *testing.T) { concurrentPicks(t, false) })
}

func concurrentPicks(t *testing.T, capped bool) {
	const maxConns = 3
	sets := [][]Spec{spread(12, 3), spread(9, 3), spread(12, 2), append(spread(6, 3), spec(4, 1, 2))}
	for _, s := range sets {
		for i := range s {
			if capped {
				s[i].MaxConns = maxConns
			}
		}
	}
	queued := Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.3, SlowStart: time.Millisecond, QueueSize: 8, QueueTimeout: time.Millisecond}
	p := NewPool("web", queued)
	p.Update(sets[0])

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[*Backend]bool{}
		errs = make(chan error, 16)
	)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var pickers sync.WaitGroup
	stop := make(chan struct{})
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	for w := range 4 {
		pickers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 8000 {
				var tried Tried
				if i%3 == 0 {
					for _, b := range p.Backends()[:r.IntN(3)] {
						tried.Add(b)
					}
				}
				l, err := p.Pick(ctx, &tried)
				b := l.Backend()
				if err != nil {
					if !errors.Is(err, ErrNoBackend) && !errors.Is(err, ErrNoCapacity) {
						errs <- err
						return
					}
					continue
				}
				if n := b.InFlight(); capped && n > maxConns {
					errs <- errors.New(b.Address() + " over max_conns")
				}
				p.mu.Lock()
				lost := b.Removed() && p.retiring[b.addr] != b
				p.mu.Unlock()
				if lost {
					errs <- errors.New(b.Address() + " picked after it was retired")
				}
				mu.Lock()
				seen[b] = true
				mu.Unlock()
				for range r.IntN(4) {
					runtime.Gosched() // hold it a little, letting others run
				}
				l.Release()
			}
		})
	}
	wg.Go(func() { // discovery and reloads, while the pickers run
		for i := 0; running(); i++ {
			p.Update(sets[i%len(sets)])
			if i%50 == 0 {
				p.Configure(Options{LocalZone: "b", SpillBelow: 0.5})
			} else if i%50 == 25 {
				p.Configure(queued)
			}
			p.Retiring()
		}
	})
	wg.Go(func() { // health checks and operators
		r := rand.New(rand.NewPCG(99, 1))
		states := []State{StateUp, StateUp, StateDown, StateEjected, StatePending}
		for i := 0; running(); i++ {
			bs := p.Backends()
			if len(bs) == 0 {
				continue
			}
			b := bs[r.IntN(len(bs))]
			b.SetState(states[r.IntN(len(states))])
			switch i % 100 {
			case 10:
				b.SetDrained(true)
			case 20:
				b.SetDrained(false)
			case 30:
				p.SetZoneDrained("c", true)
			case 40:
				p.SetZoneDrained("c", false)
			}
			_ = p.Status()
		}
	})
	pickers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ctx.Err() != nil {
		t.Fatal("ran out of time")
	}
	for b := range seen {
		if n := b.InFlight(); n != 0 {
			t.Errorf("%s: %d in flight after every release", b.Address(), n)
		}
	}
	if r := p.Retiring(); len(r) != 0 {
		t.Errorf("still retiring: %v", r)
	}
	if n := p.q.waiting.Load(); n != 0 {
		t.Errorf("%d still queued", n)
	}
	checkTally(t, p)
}
