package loadtest

import (
	"fmt"
	"net/http"
	"strings"
)

// DefaultIDHeader carries each request's unique ID when a mix names no
// ID header: with a mix, backends must be able to tell a request
// delivered twice.
const DefaultIDHeader = "X-Load-Id"

// DefaultMixBody is the body of a mix entry for POST, PUT or PATCH that
// names none: 64 bytes, small but present, so a proxy has a body to
// buffer (or not) for a replay.
var DefaultMixBody = []byte(`{"azload":"a small request body, sixty-four bytes in all....ok"}`)

// Bounds of a mix: few entries, and one cycle of the schedule (the sum of
// the weights after dividing by their greatest common divisor) short
// enough to keep as a table.
const (
	maxMixEntries = 16
	maxMixCycle   = 10000
)

// MixEntry is one kind of request in a mix.
type MixEntry struct {
	// Method is the HTTP method.
	Method string
	// Weight is the entry's share of requests, relative to the others'.
	Weight int
	// Body is sent with the entry's requests. Nil gives POST, PUT and
	// PATCH DefaultMixBody and other methods no body; an empty, non-nil
	// body sends none.
	Body []byte
}

// mixPlan is a validated mix: the schedule of entries, and the distinct
// methods results are kept under.
type mixPlan struct {
	entries  []MixEntry
	schedule []uint8  // entry of request n is schedule[(n-1) % len]
	methodOf []uint8  // entry -> index in methods
	methods  []string // distinct methods, in entry order
}

// checkMix validates a mix and fills its default bodies into a copy.
func checkMix(mix []MixEntry) ([]MixEntry, error) {
	if len(mix) > maxMixEntries {
		return nil, fmt.Errorf("mix: %d entries, want at most %d", len(mix), maxMixEntries)
	}
	out := make([]MixEntry, len(mix))
	g := 0
	for i, e := range mix {
		if e.Method == "" || strings.ContainsAny(e.Method, " \t\r\n") {
			return nil, fmt.Errorf("mix entry %d: method %q is not an HTTP method", i+1, e.Method)
		}
		if e.Weight < 1 {
			return nil, fmt.Errorf("mix entry %d (%s): weight %d, want at least 1", i+1, e.Method, e.Weight)
		}
		if e.Body == nil && (e.Method == http.MethodPost || e.Method == http.MethodPut || e.Method == http.MethodPatch) {
			e.Body = DefaultMixBody
		}
		out[i] = e
		g = gcd(g, e.Weight)
	}
	cycle := 0
	for _, e := range out {
		cycle += e.Weight / g
		if cycle > maxMixCycle {
			return nil, fmt.Errorf("mix weights: one cycle is over %d requests; use smaller or rounder weights", maxMixCycle)
		}
	}
	return out, nil
}

// newMixPlan builds the schedule of a checked mix by smooth weighted round
// robin (nginx's): each step every entry gains its weight, the entry with
// the most credit is chosen and pays the total. One cycle holds each entry
// exactly weight times, spread evenly, so request n's entry is a pure
// function of n: 10% POSTs is 10% of any run, and the same requests each
// time.
func newMixPlan(mix []MixEntry) *mixPlan {
	g := 0
	for _, e := range mix {
		g = gcd(g, e.Weight)
	}
	total := 0
	for _, e := range mix {
		total += e.Weight / g
	}
	p := &mixPlan{entries: mix, schedule: make([]uint8, total), methodOf: make([]uint8, len(mix))}
	credit := make([]int, len(mix))
	for n := range p.schedule {
		best := 0
		for i, e := range mix {
			credit[i] += e.Weight / g
			if credit[i] > credit[best] {
				best = i
			}
		}
		credit[best] -= total
		p.schedule[n] = uint8(best)
	}
	for i, e := range mix {
		j := indexOf(p.methods, e.Method)
		if j < 0 {
			j = len(p.methods)
			p.methods = append(p.methods, e.Method)
		}
		p.methodOf[i] = uint8(j)
	}
	return p
}

// entry returns the entry of the request with sequence number n (from 1).
func (p *mixPlan) entry(n int64) int { return int(p.schedule[(n-1)%int64(len(p.schedule))]) }

// mixLabel names a mix in results: "mix(GET:90,POST:10)".
func mixLabel(mix []MixEntry) string {
	parts := make([]string, len(mix))
	for i, e := range mix {
		parts[i] = fmt.Sprintf("%s:%d", e.Method, e.Weight)
	}
	return "mix(" + strings.Join(parts, ",") + ")"
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}
