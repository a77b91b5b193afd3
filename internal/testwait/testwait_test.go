package testwait

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeT records a failure instead of ending the test, so Until's own
// failure can be checked.
type fakeT struct {
	testing.TB
	failed atomic.Value
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed.Store(fmt.Sprintf(format, args...))
	panic(f) // stands for runtime.Goexit: Until must not go on
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		time.Sleep(20 * time.Millisecond)
		n.Store(1)
	}()
	Until(t, 5*time.Second, "the flag", func() bool { return n.Load() == 1 })
}

func TestUntilFailsNamingWhatItWaitedFor(t *testing.T) {
	f := &fakeT{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("Until went on after its deadline (recovered %v)", r)
			}
		}()
		Until(f, 20*time.Millisecond, "the thing that never happens", func() bool { return false })
	}()
	msg, _ := f.failed.Load().(string)
	if !strings.Contains(msg, "waiting for the thing that never happens") {
		t.Fatalf("failure message %q does not name what it waited for", msg)
	}
}
