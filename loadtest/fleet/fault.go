package fleet

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FaultKind names one way a backend misbehaves.
type FaultKind string

// The faults a backend can play. Restore ends whatever was in force.
const (
	// None is a healthy backend.
	None FaultKind = ""
	// Blackhole accepts connections but never reads or answers, on new
	// and already open keep-alive connections alike: requests hang until
	// the client gives up.
	Blackhole FaultKind = "blackhole"
	// Refuse closes the listener, so connects are refused, and closes the
	// connections already open.
	Refuse FaultKind = "refuse"
	// Slow adds Fault.Delay before each answer.
	Slow FaultKind = "slow"
	// Status answers every request with Fault.Status.
	Status FaultKind = "status"
	// Reset writes the response headers and part of the body, then resets
	// the connection (RST, through SO_LINGER 0).
	Reset FaultKind = "reset"
	// ResetBeforeHeaders reads the whole request (head and body), then
	// resets the connection (RST, through SO_LINGER 0) before any byte of
	// a response, on new and already open keep-alive connections alike:
	// a backend process that crashes while handling the request. The
	// request has reached the backend, so a proxy may replay it only if
	// it is safe to deliver twice.
	ResetBeforeHeaders FaultKind = "reset_before_headers"
	// Restore ends the fault in force.
	Restore FaultKind = "restore"
)

// Fault is one fault with its parameter.
type Fault struct {
	Kind FaultKind
	// Delay is the added latency of Slow.
	Delay time.Duration
	// Status is the status code of Status.
	Status int
}

// String returns the fault in the form ParseFault reads.
func (f Fault) String() string {
	switch f.Kind {
	case Slow:
		return "slow: " + f.Delay.String()
	case Status:
		return "status: " + strconv.Itoa(f.Status)
	case None:
		return "none"
	}
	return string(f.Kind)
}

// ParseFault reads a fault as written in scenario files: "blackhole",
// "refuse", "reset", "reset_before_headers", "restore", "slow: 500ms" or
// "status: 503" (the colon may be a space).
func ParseFault(s string) (Fault, error) {
	kind, arg, _ := strings.Cut(strings.TrimSpace(s), ":")
	if k, a, ok := strings.Cut(kind, " "); ok && arg == "" {
		kind, arg = k, a
	}
	kind, arg = strings.TrimSpace(kind), strings.TrimSpace(arg)
	f := Fault{Kind: FaultKind(kind)}
	switch f.Kind {
	case Blackhole, Refuse, Reset, ResetBeforeHeaders, Restore:
		if arg != "" {
			return Fault{}, fmt.Errorf("fault %q: %s takes no argument", s, kind)
		}
	case Slow:
		d, err := time.ParseDuration(arg)
		if err != nil || d <= 0 {
			return Fault{}, fmt.Errorf("fault %q: want \"slow: <positive duration>\", e.g. \"slow: 500ms\"", s)
		}
		f.Delay = d
	case Status:
		code, err := strconv.Atoi(arg)
		if err != nil || code < 100 || code > 599 {
			return Fault{}, fmt.Errorf("fault %q: want \"status: <code 100-599>\", e.g. \"status: 503\"", s)
		}
		f.Status = code
	default:
		return Fault{}, fmt.Errorf("fault %q: want blackhole, refuse, reset, reset_before_headers, restore, \"slow: <duration>\" or \"status: <code>\"", s)
	}
	return f, nil
}
