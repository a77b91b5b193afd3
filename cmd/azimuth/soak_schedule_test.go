package main

import (
	"slices"
	"testing"
	"time"
)

// The soak's plan scales with its length: CI's 60s run plays one short
// fault and one restart and still ends on time; a long run plays a fault
// a minute and a restart every ten; no restart overlaps a fault, and
// everything ends before the run does.
func TestSoakSchedule(t *testing.T) {
	tests := []struct {
		d        time.Duration
		faults   int
		restarts []time.Duration
		faultFor time.Duration
	}{
		{30 * time.Second, 1, []time.Duration{18 * time.Second}, 2500 * time.Millisecond},
		{60 * time.Second, 1, []time.Duration{36 * time.Second}, 5 * time.Second},
		{10 * time.Minute, 10, []time.Duration{5*time.Minute + 36*time.Second}, 10 * time.Second},
		{30 * time.Minute, 30, []time.Duration{5*time.Minute + 36*time.Second, 15*time.Minute + 36*time.Second, 25*time.Minute + 36*time.Second}, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			p := soakSchedule(tt.d)
			// A restart keeps the agent away for faultFor, then the
			// watcher's back-off and the refill take 4s to 9s more in
			// most runs (20s once); a slower one only makes the run go
			// on past its length to end it.
			restartTakes := p.faultFor + 15*time.Second
			if len(p.faults) != tt.faults || !slices.Equal(p.restarts, tt.restarts) || p.faultFor != tt.faultFor {
				t.Fatalf("plan %+v; want %d faults, restarts at %v, each for %v", p, tt.faults, tt.restarts, tt.faultFor)
			}
			if tt.faults > 1 && p.faults[1]-p.faults[0] != time.Minute {
				t.Errorf("faults %v: want one a minute", p.faults)
			}
			if tt.d < time.Minute {
				// The shortest soak squeezes both events together; they
				// play on different pools, so they may overlap.
				return
			}
			// A fault ends within a few seconds of its restore (2s to 3s
			// seen): soakSettle after that the next event may start.
			faultTakes := p.faultFor + 5*time.Second
			for _, r := range p.restarts {
				for _, f := range p.faults {
					if r < f+faultTakes+soakSettle && f < r+restartTakes {
						t.Errorf("restart at %v overlaps the fault at %v", r, f)
					}
				}
			}
			if last := p.restarts[len(p.restarts)-1]; last+restartTakes > tt.d {
				t.Errorf("the last restart, at %v, may run past the end (%v)", last, tt.d)
			}
			if last := p.faults[len(p.faults)-1]; last+faultTakes > tt.d {
				t.Errorf("the last fault, at %v, may run past the end (%v)", last, tt.d)
			}
		})
	}
}
