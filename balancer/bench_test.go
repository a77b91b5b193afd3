package balancer

import (
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"testing"
)

// benchPool is a pool of n weight-1 backends spread over three zones, with
// the proxy in zone "a" and the config file's usual thresholds.
func benchPool(n int) *Pool {
	p := NewPool("web", Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.5})
	p.Update(spread(n, 3))
	return p
}

var benchSizes = []int{6, 100, 1000}

// BenchmarkPick measures one Pick plus its Release: serially, and from
// every core at once (no global lock on the path, so throughput should
// grow with -cpu).
func BenchmarkPick(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			p := benchPool(n)
			b.ReportAllocs()
			for b.Loop() {
				x, err := p.Pick(b.Context(), nil)
				if err != nil {
					b.Fatal(err)
				}
				x.Release()
			}
		})
		b.Run(fmt.Sprintf("backends=%d/parallel", n), func(b *testing.B) {
			p := benchPool(n)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					x, err := p.Pick(b.Context(), nil)
					if err != nil {
						b.Error(err)
						return
					}
					x.Release()
				}
			})
		})
	}
}

// BenchmarkPickUnshared is the parallel case with one pool per goroutine,
// so nothing at all is shared: the baseline that BenchmarkPick/parallel on
// one shared pool is measured against. Equal numbers mean the pool adds
// no contention of its own beyond the backends' counters.
func BenchmarkPickUnshared(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("backends=%d/parallel", n), func(b *testing.B) {
			var next atomic.Int32
			pools := make([]*Pool, runtime.GOMAXPROCS(0))
			for i := range pools {
				pools[i] = benchPool(n)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				p := pools[int(next.Add(1)-1)%len(pools)]
				for pb.Next() {
					x, err := p.Pick(b.Context(), nil)
					if err != nil {
						b.Error(err)
						return
					}
					x.Release()
				}
			})
		})
	}
}

// BenchmarkPickExact is BenchmarkPick with the exact scan at every size:
// the cost two random choices saves on large zones.
func BenchmarkPickExact(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			p := benchPool(n)
			p.p2cAbove = math.MaxInt
			b.ReportAllocs()
			for b.Loop() {
				x, _ := p.Pick(b.Context(), nil)
				x.Release()
			}
		})
	}
}

// BenchmarkPickLoaded holds requests on the pool first, so the scan
// compares real loads instead of breaking ties among idle backends.
func BenchmarkPickLoaded(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			p := benchPool(n)
			held := hold(b, p, 5*n)
			defer releaseAll(held)
			b.ReportAllocs()
			for b.Loop() {
				x, _ := p.Pick(b.Context(), nil)
				x.Release()
			}
		})
	}
}

// BenchmarkPickSpill: the local zone is below spill_below, so picks draw
// and a share of them spreads over the other zones by capacity.
func BenchmarkPickSpill(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			p := benchPool(n)
			local := 0
			for _, x := range p.Backends() {
				if x.Zone() == "a" && local%2 == 0 {
					x.SetState(StateDown)
				}
				if x.Zone() == "a" {
					local++
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				x, _ := p.Pick(b.Context(), nil)
				x.Release()
			}
		})
	}
}

// BenchmarkPickRetry: a second attempt that excludes the first backend
// and its zone.
func BenchmarkPickRetry(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			p := benchPool(n)
			var tried Tried
			tried.Add(p.Backends()[0])
			b.ReportAllocs()
			for b.Loop() {
				x, _ := p.Pick(b.Context(), &tried)
				x.Release()
			}
		})
	}
}

// BenchmarkPickPolicy measures one pick plus its release under each
// policy, on the pool of BenchmarkPick; hash picks bring a key (a new one
// each time), the others none. BenchmarkPick is least-conn's baseline.
func BenchmarkPickPolicy(b *testing.B) {
	for _, pol := range []Policy{PolicyRoundRobin, PolicyRandom, PolicyP2C, PolicyHash} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/backends=%d", pol, n), func(b *testing.B) {
				p := NewPool("web", Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.5, Policy: pol})
				p.Update(spread(n, 3))
				var k *Key
				if pol == PolicyHash {
					k = &Key{HasHash: true}
				}
				b.ReportAllocs()
				for b.Loop() {
					if k != nil {
						k.Hash = mix64(k.Hash + 1)
					}
					x, err := p.PickKeyed(b.Context(), nil, k)
					if err != nil {
						b.Fatal(err)
					}
					x.Release()
				}
			})
		}
	}
}

// BenchmarkPickSticky: a pinned pick, whose backend is in another zone.
func BenchmarkPickSticky(b *testing.B) {
	p := benchPool(100)
	k := &Key{Pin: p.Backend(addr(2, 1)).Pin()}
	b.ReportAllocs()
	for b.Loop() {
		x, err := p.PickKeyed(b.Context(), nil, k)
		if err != nil {
			b.Fatal(err)
		}
		x.Release()
	}
}

// BenchmarkUpdateHash is the cost of a new set for a pool that hashes:
// its Maglev tables (one per zone and one for the whole set) are built
// before it is published.
func BenchmarkUpdateHash(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			p := NewPool("web", Options{LocalZone: "a", Policy: PolicyHash})
			specs := spread(n, 3)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.Update(specs[:len(specs)-i%2]) // a new set each time
			}
		})
	}
}

// BenchmarkPickParallel is BenchmarkPick/parallel at 6 backends: every
// core picks on one pool and writes the same exact in-flight counters, so
// its cost against -cpu 1 is the price of exactness (decision 0015). Run
// it with -cpu 1,2,4,16.
func BenchmarkPickParallel(b *testing.B) {
	p := NewPool("web", Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.5})
	p.Update(spread(6, 3))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			x, err := p.Pick(b.Context(), nil)
			if err != nil {
				b.Error(err)
				return
			}
			x.Release()
		}
	})
}
