package configs

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes written in the config file as a string with a
// unit: "512B", "64KiB", "1MiB", "10KB", "2GB", or a bare integer meaning
// bytes. Binary units (KiB, MiB, GiB) are powers of 1024 and decimal units
// (KB, MB, GB) powers of 1000, so an operator copying a number from a
// datasheet gets exactly what it says. Units are case-sensitive as written
// here; "kb" or "Mb" are rejected rather than guessed at.
type Size int64

// Bytes returns the size as a plain byte count.
func (s Size) Bytes() int64 { return int64(s) }

// String returns the shortest exact form with a binary unit when one fits
// ("64KiB"), else the byte count with "B".
func (s Size) String() string {
	n := int64(s)
	for _, u := range []struct {
		name string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// MarshalText writes the size in the form ParseSize reads.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses the size with ParseSize.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "KiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize reads a size such as "64KiB", "1MB", "512B" or "1024". The
// number is a non-negative integer; fractions ("1.5MiB"), signs, spaces and
// unknown units are errors, so a typo never turns into a silent default.
func ParseSize(s string) (Size, error) {
	if s == "" {
		return 0, errors.New("empty size")
	}
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	if num == "" {
		return 0, fmt.Errorf("size %q has no number", s)
	}
	for _, r := range num {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("size %q: want a whole number of B, KB, KiB, MB, MiB, GB or GiB", s)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(n * mult), nil
}

// ParseDuration reads a duration such as "300ms" or "1m30s" with
// time.ParseDuration and rejects negative values. "0" is allowed and means
// "off" or "none" wherever a field's doc says so; any other number needs a
// unit, so "30" is an error rather than 30 nanoseconds.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a number with a unit such as 300ms, 5s or 1m", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

// GCPercent is runtime.gc_percent: a percentage of at least 10, GCOff, or
// 0 for "as the environment says" (the key absent).
type GCPercent int

// GCOff is runtime.gc_percent: off.
const GCOff GCPercent = -1

// MinGCPercent is the smallest number runtime.gc_percent accepts: below it
// the collector would run almost without pause.
const MinGCPercent = 10

// MaxGCPercent is the largest: the runtime keeps the pace in 32 bits, and a
// larger number would wrap (to off, or to 0).
const MaxGCPercent = math.MaxInt32

// String returns "off" or the number.
func (p GCPercent) String() string {
	if p == GCOff {
		return "off"
	}
	return strconv.Itoa(int(p))
}

// MarshalText writes the value in the form UnmarshalText reads.
func (p GCPercent) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads "off" or a whole number.
func (p *GCPercent) UnmarshalText(b []byte) error {
	if string(b) == "off" {
		*p = GCOff
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 {
		return fmt.Errorf("%q: want a whole number (percent) or off", b)
	}
	*p = GCPercent(n)
	return nil
}
