package discovery

import "testing"

func TestNextIndex(t *testing.T) {
	tests := []struct {
		name      string
		last, got uint64
		want      uint64
	}{
		{"first query", 0, 42, 42},
		{"unchanged after timeout", 42, 42, 42},
		{"moved forward", 42, 57, 57},
		{"went backwards resets", 57, 3, 0},
		{"went backwards to zero resets", 57, 0, 0},
		{"zero on first query clamps to one", 0, 0, 1},
		{"one stays one", 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextIndex(tt.last, tt.got); got != tt.want {
				t.Errorf("nextIndex(%d, %d) = %d, want %d", tt.last, tt.got, got, tt.want)
			}
		})
	}
}
