package balancer

import (
	"math/rand/v2"
	"sync"
)

// lockedRand is a seeded, concurrency-safe Rand for deterministic tests.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func seeded(seed uint64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}
