package balancer

import (
	"fmt"
	"math"
	"testing"
)

// TestLeastConnKeepsInFlightEven simulates backends of uneven latency: each
// tick the requests that are due finish, then a batch arrives. Least
// connections must keep every backend's in-flight count per unit of weight
// within a small spread, however slow it is (a random or round-robin
// picker lets the slow ones pile up dozens of requests here). 10,000 picks
// per case, all deterministic.
func TestLeastConnKeepsInFlightEven(t *testing.T) {
	tests := []struct {
		name      string
		latencies []int // ticks per request, one backend each
		weights   []int // nil: all 1
		perTick   int
		exact     bool    // force the exact scan
		maxSpread float64 // of in-flight/weight, after each batch
	}{
		{name: "six backends", latencies: []int{1, 1, 2, 4, 8, 16}, perTick: 20, exact: true, maxSpread: 2},
		{name: "weighted", latencies: []int{1, 2, 4, 8}, weights: []int{1, 2, 3, 4}, perTick: 20, exact: true, maxSpread: 1},
		{name: "two choices at 300", latencies: repeat([]int{1, 2, 3, 5, 8, 13}, 50), perTick: 100, maxSpread: 4},
		{name: "exact at 300", latencies: repeat([]int{1, 2, 3, 5, 8, 13}, 50), perTick: 100, exact: true, maxSpread: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(Options{LocalZone: "a"})
			if tt.exact {
				p.p2cAbove = math.MaxInt
			}
			n := len(tt.latencies)
			specs := make([]Spec, n)
			weight := map[string]float64{}
			latency := map[string]int{}
			for i := range specs {
				w := 1
				if tt.weights != nil {
					w = tt.weights[i]
				}
				specs[i] = Spec{Address: fmt.Sprintf("127.0.1.%d:%d", i/200+1, 8000+i), Zone: "a", Weight: w}
				weight[specs[i].Address] = float64(w)
				latency[specs[i].Address] = tt.latencies[i]
			}
			p.Update(specs)
			due := map[int][]Lease{}
			picks, worst := 0, 0.0
			picked := map[string]int{}
			for tick := 0; picks < 10000; tick++ {
				releaseAll(due[tick])
				delete(due, tick)
				for range tt.perTick {
					l, err := p.Pick(t.Context(), nil)
					if err != nil {
						t.Fatalf("pick %d: %v", picks, err)
					}
					picks++
					a := l.Backend().Address()
					picked[a]++
					due[tick+latency[a]] = append(due[tick+latency[a]], l)
				}
				lo, hi := math.Inf(1), math.Inf(-1)
				for _, b := range p.Backends() {
					x := float64(b.InFlight()) / weight[b.Address()]
					lo, hi = min(lo, x), max(hi, x)
				}
				worst = max(worst, hi-lo)
			}
			if worst > tt.maxSpread {
				t.Errorf("in-flight per weight spread reached %.2f, want at most %.2f", worst, tt.maxSpread)
			}
			// Faster backends finish sooner, so they must have served more.
			fast, slow := specs[0].Address, specs[len(specs)-1].Address
			if tt.weights == nil && picked[fast] <= picked[slow] {
				t.Errorf("fast backend served %d, slow one %d", picked[fast], picked[slow])
			}
			for _, bs := range due {
				releaseAll(bs)
			}
			t.Logf("worst spread %.2f", worst)
		})
	}
}

func repeat(xs []int, n int) []int {
	var out []int
	for range n {
		out = append(out, xs...)
	}
	return out
}
