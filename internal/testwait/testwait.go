// Package testwait waits in tests for a condition that something running
// in the background makes true: it polls with a deadline and, when the
// deadline passes, fails the test naming what it waited for.
package testwait

import (
	"testing"
	"time"
)

// pollInterval is how often Until looks again; it is not a wait for an
// event, only the spacing of the looks.
const pollInterval = 5 * time.Millisecond

// Until polls cond until it holds, and fails t naming what it waited for
// if d passes first.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(pollInterval)
	}
}
