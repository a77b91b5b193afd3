package configs

import (
	"fmt"
	"time"
)

// PerTry is timeouts.per_try: "auto" (the default: learned from the pool's
// own latency), "off" (or 0: no per-try limit, only timeouts.request), or a
// fixed duration such as "250ms".
type PerTry struct {
	// Mode is PerTryAuto, PerTryFixed or PerTryOff.
	Mode string
	// Fixed is the limit when Mode is PerTryFixed.
	Fixed time.Duration
}

// Modes of PerTry.
const (
	PerTryAuto  = "auto"
	PerTryFixed = "fixed"
	PerTryOff   = "off"
)

// PerTryDuration is a fixed per-try timeout of d (0 or less is off).
func PerTryDuration(d time.Duration) PerTry {
	if d <= 0 {
		return PerTry{Mode: PerTryOff}
	}
	return PerTry{Mode: PerTryFixed, Fixed: d}
}

// String returns the value as written in the file.
func (p PerTry) String() string {
	switch p.Mode {
	case PerTryFixed:
		return p.Fixed.String()
	case "":
		return PerTryAuto
	}
	return p.Mode
}

// MarshalText writes the value in the form UnmarshalText reads.
func (p PerTry) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads "auto", "off", or a duration; "0" is off.
func (p *PerTry) UnmarshalText(b []byte) error {
	switch s := string(b); s {
	case PerTryAuto, PerTryOff:
		*p = PerTry{Mode: s}
		return nil
	default:
		d, err := ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want auto, off or a duration such as 250ms: %w", err)
		}
		*p = PerTryDuration(d)
		return nil
	}
}
