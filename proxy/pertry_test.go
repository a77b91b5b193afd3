package proxy

import (
	"testing"
	"time"
)

func TestLatencyBuckets(t *testing.T) {
	prev := -1
	for _, d := range []time.Duration{0, time.Microsecond, 7 * time.Microsecond, 8 * time.Microsecond, 9 * time.Microsecond,
		100 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond, 5 * time.Millisecond, time.Second, 100 * time.Second} {
		j := latBucket(d)
		if j < prev {
			t.Fatalf("bucket of %v is %d, below the bucket of a shorter time (%d)", d, j, prev)
		}
		prev = j
		up := latUpper(j)
		if d >= up || (j > 0 && d < latUpper(j-1)) {
			t.Errorf("%v in bucket %d, which spans [%v, %v)", d, j, latUpper(j-1), up)
		}
		if d >= latExact*time.Microsecond && float64(up) > float64(d)*1.26 {
			t.Errorf("%v: bucket upper bound %v is more than 25%% above it", d, up)
		}
	}
	if j := latBucket(time.Hour); j != latBuckets-1 {
		t.Errorf("an hour is in bucket %d, want the last, %d", j, latBuckets-1)
	}
}

// TestPerTryLearner feeds the learner samples on its own clock and checks
// the value it settles on: 3 × p99, clamped, learned only from enough
// samples, forgotten after the window.
func TestPerTryLearner(t *testing.T) {
	slice := perTryWindow / perTrySlots
	type phase struct {
		at      time.Duration // the first sample's time
		samples []time.Duration
		want    time.Duration // the value once the next slice begins
		within  float64       // relative tolerance (bucket width)
	}
	many := func(n int, d time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = d
		}
		return out
	}
	withTail := func(n int, d time.Duration, tail int, slow time.Duration) []time.Duration {
		return append(many(n-tail, d), many(tail, slow)...)
	}
	cases := []struct {
		name   string
		phases []phase
	}{
		{"the start value until enough samples", []phase{{at: 0, samples: many(perTryMinSamples-1, 10*time.Millisecond), want: perTryStart}}},
		{"three times the p99", []phase{{at: 0, samples: withTail(1000, 10*time.Millisecond, 5, 40*time.Millisecond), want: 30 * time.Millisecond, within: 0.25}}},
		{"the p99 is the tail's when the tail is over 1%", []phase{{at: 0, samples: withTail(1000, 10*time.Millisecond, 20, 40*time.Millisecond), want: 120 * time.Millisecond, within: 0.25}}},
		{"never below the floor", []phase{{at: 0, samples: many(100, 100*time.Microsecond), want: perTryFloor}}},
		{"never above the ceiling", []phase{{at: 0, samples: many(100, 10*time.Second), want: perTryCeiling}}},
		{"it follows a slower pool", []phase{
			{at: 0, samples: many(200, 10*time.Millisecond), want: 30 * time.Millisecond, within: 0.25},
			{at: 2 * slice, samples: many(200, 200*time.Millisecond), want: 600 * time.Millisecond, within: 0.25},
		}},
		{"old samples leave the window", []phase{
			{at: 0, samples: many(200, 200*time.Millisecond), want: 600 * time.Millisecond, within: 0.25},
			{at: perTryWindow + 2*slice, samples: many(200, 10*time.Millisecond), want: 30 * time.Millisecond, within: 0.25},
		}},
		{"a slice where most requests are slow raises it at once", []phase{
			{at: 0, samples: many(5000, 10*time.Millisecond), want: 30 * time.Millisecond, within: 0.25},
			// 40 slow answers in half a second: under 1% of the window.
			{at: 2 * slice, samples: many(40, 800*time.Millisecond), want: 2400 * time.Millisecond, within: 0.25},
		}},
		{"one slow request in a slice does not", []phase{
			{at: 0, samples: many(5000, 10*time.Millisecond), want: 30 * time.Millisecond, within: 0.25},
			{at: 2 * slice, samples: withTail(40, 10*time.Millisecond, 1, 5*time.Second), want: 30 * time.Millisecond, within: 0.25},
		}},
		{"too few samples keep the value learned", []phase{
			{at: 0, samples: many(200, 10*time.Millisecond), want: 30 * time.Millisecond, within: 0.25},
			{at: 2 * perTryWindow, samples: many(3, time.Second), want: 30 * time.Millisecond, within: 0.25},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var l perTryLearner
			for i, ph := range c.phases {
				for _, d := range ph.samples {
					l.observe(ph.at, d)
				}
				l.observe(ph.at+slice, time.Millisecond) // a new slice: the value is computed
				got := l.current()
				if lo, hi := float64(ph.want)*(1-ph.within), float64(ph.want)*(1+ph.within); float64(got) < lo || float64(got) > hi {
					t.Fatalf("phase %d: per-try %v, want %v (±%.0f%%)", i, got, ph.want, ph.within*100)
				}
			}
		})
	}
}

// TestPerTryNowLeavesRoomForAHedge checks the learned value never exceeds
// half of the request's time.
func TestPerTryNowLeavesRoomForAHedge(t *testing.T) {
	p := &Pool{PoolConfig: PoolConfig{Timeouts: Timeouts{PerTryAuto: true, Request: time.Second}}, perTry: new(perTryLearner)}
	if got := p.perTryNow(); got != 500*time.Millisecond {
		t.Errorf("per-try %v with a 1s request timeout, want 500ms", got)
	}
	p.Timeouts = Timeouts{PerTry: 250 * time.Millisecond, Request: time.Second}
	if got, auto := p.PerTry(); got != 250*time.Millisecond || auto {
		t.Errorf("fixed per-try: %v (auto %v), want 250ms", got, auto)
	}
}
