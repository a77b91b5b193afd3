package discovery

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const base, max = 100 * time.Millisecond, 2 * time.Second
	tests := []struct {
		name string
		n    int
		r    float64
		want time.Duration
	}{
		{"first error, no jitter", 1, 0, 50 * time.Millisecond},
		{"first error, half jitter", 1, 0.5, 75 * time.Millisecond},
		{"second error doubles", 2, 0, 100 * time.Millisecond},
		{"fifth error", 5, 0, 800 * time.Millisecond},
		{"capped", 6, 0, time.Second},
		{"capped far out", 1000, 0, time.Second},
		{"capped with jitter", 1000, 0.75, 1750 * time.Millisecond},
		{"r of one is clamped below max", 1000, 1, 2*time.Second - time.Microsecond},
		{"zero n counts as first", 0, 0, 50 * time.Millisecond},
		{"r out of range is clamped low", 1, -3, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := backoff(tt.n, base, max, tt.r)
			if got != tt.want {
				t.Errorf("backoff(%d, %v, %v, %v) = %v, want %v", tt.n, base, max, tt.r, got, tt.want)
			}
			if got >= max {
				t.Errorf("backoff = %v, not below max %v", got, max)
			}
		})
	}
}
