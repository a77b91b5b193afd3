package balancer

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// Least-connections is exact: every pick compares the backends' exact
// in-flight counts, whichever core it runs on (decision 0015). A
// discrete-event simulation, in virtual time, of requests arriving at
// random and served by eight backends of which four are five times slower
// than the others. Each pick and each release runs on one of `cores`
// goroutines chosen at random (the simulated cores), one at a time, so
// the counts a pick sees are the ones the test reads just before it. At
// each pick the test compares the chosen backend with the exact counts:
// its regret is how many requests more it held than the least loaded, and
// a tie it lost is an equally loaded, busy backend whose last request
// ended later (leastConn's tie rule). Penalties, slow start and weights
// are off, so the rule is least in-flight, full stop.

// exactnessRun is one simulation's numbers.
type exactnessRun struct {
	picks        int
	maxRegret    int64   // the worst pick's in-flight count above the least loaded
	badTies      int     // picks that broke a busy tie against the later release
	slowShare    float64 // share of requests the slow backends took
	meanSpread   float64 // mean over picks of (max - min) in flight among fast backends
	meanInFlight float64
}

func (r exactnessRun) String() string {
	return fmt.Sprintf("%d picks: worst regret %d, ties lost %d; fast backends' spread %.2f; slow share %.3f; in flight %.1f",
		r.picks, r.maxRegret, r.badTies, r.meanSpread, r.slowShare, r.meanInFlight)
}

// release is a request ending at a virtual time; lease is its Lease in the
// pool's simulation, slot its backend in the reference's.
type release struct {
	at    float64
	lease Lease
	slot  int
}

type releases []release

func (r releases) Len() int           { return len(r) }
func (r releases) Less(i, j int) bool { return r[i].at < r[j].at }
func (r releases) Swap(i, j int)      { r[i], r[j] = r[j], r[i] }
func (r *releases) Push(x any)        { *r = append(*r, x.(release)) }
func (r *releases) Pop() any {
	old := *r
	x := old[len(old)-1]
	*r = old[:len(old)-1]
	return x
}

// simLatency is backend i's mean latency, in virtual time units: four fast
// backends, four five times slower.
func simLatency(i int) float64 {
	if i < 4 {
		return 1
	}
	return 5
}

// Little's law: in flight = rate × mean latency. With least-conn the slow
// backends get about a fifth of the fast ones' rate, so the mean latency
// is about (4×1 + 4×0.2×5)/(4 + 0.8) ≈ 1.67: a rate of 24 requests per
// unit keeps about 40 in flight, five per backend; 192 keeps forty.

// simCores runs functions on `n` goroutines, one function at a time: the
// simulated cores.
type simCores struct {
	work []chan func()
	ack  chan struct{}
	wg   sync.WaitGroup
}

func newSimCores(n int) *simCores {
	c := &simCores{work: make([]chan func(), n), ack: make(chan struct{})}
	for i := range c.work {
		ch := make(chan func())
		c.work[i] = ch
		c.wg.Go(func() {
			for f := range ch {
				f()
				c.ack <- struct{}{}
			}
		})
	}
	return c
}

// run runs f on core i and waits for it.
func (c *simCores) run(i int, f func()) {
	c.work[i] <- f
	<-c.ack
}

func (c *simCores) stop() {
	for _, ch := range c.work {
		close(ch)
	}
	c.wg.Wait()
}

// simulateLeastConn runs the simulation on a pool, its picks and releases
// spread over `cores` goroutines.
func simulateLeastConn(t testing.TB, cores, picks int, rate float64, seed uint64) exactnessRun {
	p := NewPool("web", Options{}, WithRand(seeded(seed)))
	var specs []Spec
	for h := 1; h <= 8; h++ {
		specs = append(specs, spec(1, h, 1))
	}
	p.Update(specs)
	backends := p.Backends()
	slot := map[*Backend]int{}
	for i, b := range backends {
		slot[b] = i
	}
	cpu := newSimCores(cores)
	defer cpu.stop()

	rng := rand.New(rand.NewPCG(seed, seed+1))
	var q releases
	now := 0.0
	run := exactnessRun{picks: picks}
	slow := 0
	var spreadSum, inFlightSum float64
	var load [8]int64
	var done [8]uint64
	for range picks {
		now += rng.ExpFloat64() / rate
		for q.Len() > 0 && q[0].at <= now {
			r := heap.Pop(&q).(release)
			cpu.run(rng.IntN(cores), r.lease.Release)
		}
		least, minFast, maxFast, total := int64(1<<62), int64(1<<62), int64(0), int64(0)
		for i, b := range backends {
			load[i], done[i] = b.InFlight(), b.done.Load()
			least = min(least, load[i])
			total += load[i]
			if simLatency(i) == 1 {
				minFast, maxFast = min(minFast, load[i]), max(maxFast, load[i])
			}
		}
		var l Lease
		var err error
		cpu.run(rng.IntN(cores), func() { l, err = p.Pick(t.Context(), nil) })
		if err != nil {
			t.Fatal(err)
		}
		i := slot[l.Backend()]
		run.maxRegret = max(run.maxRegret, load[i]-least)
		if load[i] == least && least > 0 {
			for j := range backends {
				if load[j] == least && done[j] > done[i] {
					run.badTies++
					break
				}
			}
		}
		if simLatency(i) > 1 {
			slow++
		}
		spreadSum += float64(maxFast - minFast)
		inFlightSum += float64(total)
		heap.Push(&q, release{at: now + simLatency(i)*(0.5+rng.Float64()), lease: l})
	}
	for q.Len() > 0 {
		heap.Pop(&q).(release).lease.Release()
	}
	for _, b := range backends {
		if n := b.InFlight(); n != 0 {
			t.Errorf("%s: %d in flight after every release", b.Address(), n)
		}
	}
	run.slowShare = float64(slow) / float64(picks)
	run.meanSpread = spreadSum / float64(picks)
	run.meanInFlight = inFlightSum / float64(picks)
	return run
}

// referenceLeastConn runs the same simulation on a plain model of exact
// least-connections, written apart from the pool: an array of counts, the
// least loaded wins, a busy tie goes to the latest release, an idle tie is
// drawn at random. It gives the slow backends' share the pool must match.
func referenceLeastConn(picks int, rate float64, seed uint64) exactnessRun {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	draw := rand.New(rand.NewPCG(seed^0x5eed, seed))
	var q releases
	now := 0.0
	var load [8]int64
	var done [8]uint64
	var tick uint64
	slow := 0
	for range picks {
		now += rng.ExpFloat64() / rate
		for q.Len() > 0 && q[0].at <= now {
			r := heap.Pop(&q).(release)
			tick++
			load[r.slot]--
			done[r.slot] = tick
		}
		best, ties := 0, 1
		for i := 1; i < len(load); i++ {
			switch {
			case load[i] < load[best],
				load[i] == load[best] && load[i] > 0 && done[i] > done[best]:
				best, ties = i, 1
			case load[i] == load[best] && (load[i] == 0 || done[i] == done[best]):
				ties++
				if draw.IntN(ties) == 0 {
					best = i
				}
			}
		}
		load[best]++
		if simLatency(best) > 1 {
			slow++
		}
		heap.Push(&q, release{at: now + simLatency(best)*(0.5+rng.Float64()), slot: best})
	}
	return exactnessRun{picks: picks, slowShare: float64(slow) / float64(picks)}
}

// TestLeastConnIsExact: at five and at forty requests in flight per
// backend, with picks and releases spread over eight goroutines, every
// pick goes to a least loaded backend and breaks busy ties by the latest
// release, and the slow backends get the share exact least-connections
// gives them (the reference model's, within a percentage point).
func TestLeastConnIsExact(t *testing.T) {
	const picks = 100_000
	for _, tt := range []struct {
		name string
		rate float64
	}{
		{"5 in flight per backend", 24},
		{"40 in flight per backend", 192},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := simulateLeastConn(t, 8, picks, tt.rate, 7)
			want := referenceLeastConn(picks, tt.rate, 7)
			t.Logf("pool:      %v", got)
			t.Logf("reference: slow share %.3f", want.slowShare)
			if got.maxRegret != 0 {
				t.Errorf("a pick chose a backend %d requests above the least loaded", got.maxRegret)
			}
			if got.badTies != 0 {
				t.Errorf("%d picks broke a busy tie against the backend that ended a request later", got.badTies)
			}
			if d := got.slowShare - want.slowShare; d > 0.01 || d < -0.01 {
				t.Errorf("slow backends took %.3f of requests, exact least-connections %.3f", got.slowShare, want.slowShare)
			}
		})
	}
}
