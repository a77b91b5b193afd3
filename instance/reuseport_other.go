//go:build !linux

package instance

// steerToOldest is Linux only; elsewhere the kernel's own reuseport
// distribution applies.
func steerToOldest(int) error { return nil }

// steerToSecond is Linux only (see steerToOldest).
func steerToSecond(int) error { return nil }
