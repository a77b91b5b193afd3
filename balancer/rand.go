package balancer

import "math"

// prng is a pick's own random stream: splitmix64, seeded from the pool's
// Rand on first use. One call through the Rand interface per pick (and only
// when a pick needs randomness) keeps ties and spill draws cheap, while an
// injected Rand still makes every pick reproducible.
type prng struct {
	src    Rand
	state  uint64
	seeded bool
}

func (r *prng) next() uint64 {
	if !r.seeded {
		r.state, r.seeded = uint64(r.src.IntN(math.MaxInt64)), true
	}
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// intN returns a number in [0, n) for 0 < n < 1<<32 (Lemire's
// multiply-shift; its bias is below 2^-32 for the n a pool sees).
func (r *prng) intN(n int) int { return int((r.next() >> 32) * uint64(n) >> 32) }

// int64N returns a number in [0, n) for n > 0.
func (r *prng) int64N(n int64) int64 {
	if n < 1<<32 {
		return int64(r.intN(int(n)))
	}
	return int64(r.next() % uint64(n))
}

// float64 returns a number in [0, 1).
func (r *prng) float64() float64 { return float64(r.next()>>11) / (1 << 53) }
