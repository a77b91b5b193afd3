package configs

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "512", want: 512},
		{in: "512B", want: 512},
		{in: "64KiB", want: 64 << 10},
		{in: "1MiB", want: 1 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "10KB", want: 10_000},
		{in: "3MB", want: 3_000_000},
		{in: "1GB", want: 1_000_000_000},
		{in: "", wantErr: true},
		{in: "KiB", wantErr: true},
		{in: "1.5MiB", wantErr: true},
		{in: "-1KiB", wantErr: true},
		{in: "+1KiB", wantErr: true},
		{in: "10 MB", wantErr: true},
		{in: "10kb", wantErr: true},
		{in: "10Mb", wantErr: true},
		{in: "10TB", wantErr: true},
		{in: "0x10", wantErr: true},
		{in: "9223372036854775807GiB", wantErr: true},
		{in: "99999999999999999999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
			// String and ParseSize agree, so sizes round-trip through logs.
			back, err := ParseSize(got.String())
			if err != nil || back != got {
				t.Fatalf("ParseSize(%q.String()=%q) = %d, %v", tt.in, got.String(), back, err)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	for in, want := range map[Size]string{0: "0B", 512: "512B", 64 << 10: "64KiB", 3 << 20: "3MiB", 1 << 30: "1GiB", 10_000: "10000B"} {
		if got := in.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(in), got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "300ms", want: 300 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "2h", want: 2 * time.Hour},
		{in: "-1s", wantErr: true},
		{in: "30", wantErr: true},
		{in: "5 seconds", wantErr: true},
		{in: "", wantErr: true},
		{in: "1d", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
