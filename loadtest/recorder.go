package loadtest

import (
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds, in microseconds: from 1µs to 10 minutes. A longer
// latency is clamped to the top so it still counts.
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
	// histDigits is the precision of the run's histogram; a second's
	// histogram uses secondDigits to keep a long timeline small.
	histDigits   = 3
	secondDigits = 2
)

func newHist() *hdr.Histogram    { return hdr.New(histLowest, histHighest, histDigits) }
func newSecHist() *hdr.Histogram { return hdr.New(histLowest, histHighest, secondDigits) }

func micros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	return min(max(us, histLowest), histHighest)
}

// outcome is what one request produced; it is recorded by value so the hot
// loop allocates nothing for it.
type outcome struct {
	second  int           // offset of the intended send time from the start
	latency time.Duration // from intended send to last body byte or error
	status  int
	class   ErrorClass
	method  uint8 // with a mix, the index of the request's method
	backend string
	zone    string
}

// failed reports whether the request counts as a failure: a transport
// error or a status outside 2xx/3xx.
func (o *outcome) failed() bool {
	return o.class != classNone || o.status < 200 || o.status >= 400
}

// second holds one second of the timeline in one shard.
type second struct {
	requests  int64
	failed    int64
	redirects int64 // 3xx, a success overall but not per method
	hist      *hdr.Histogram
	zones     map[string]int64
}

// shard is one slice of the run's counters. Workers are spread over a few
// shards so their locks are rarely contended; the reporter merges them.
type shard struct {
	mu        sync.Mutex
	hist      *hdr.Histogram
	requests  int64
	failed    int64
	redirects int64
	status    [600]int64
	classes   [numClasses]int64
	backends  map[string]int64
	zones     map[string]int64
	seconds   []*second
	// methods, with a mix, tallies each method apart, under mu.
	methods []*shard
}

func newShard() *shard {
	return &shard{hist: newHist(), backends: map[string]int64{}, zones: map[string]int64{}}
}

// newMixShard is a shard that also tallies each of n methods apart.
func newMixShard(n int) *shard {
	s := newShard()
	s.methods = make([]*shard, n)
	for i := range s.methods {
		s.methods[i] = newShard()
	}
	return s
}

func (s *shard) record(o *outcome) {
	us := micros(o.latency)
	failed := o.failed()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(o, us, failed)
	if s.methods != nil {
		s.methods[o.method].add(o, us, failed)
	}
}

// add counts one outcome; the caller holds the lock of the shard at the
// top.
func (s *shard) add(o *outcome, us int64, failed bool) {
	redirect := !failed && o.status >= 300
	_ = s.hist.RecordValue(us) // values are clamped into range above
	s.requests++
	if failed {
		s.failed++
	}
	if redirect {
		s.redirects++
	}
	if o.class != classNone {
		s.classes[o.class]++
	} else if o.status >= 0 && o.status < len(s.status) {
		s.status[o.status]++
	}
	if o.backend != "" {
		s.backends[o.backend]++
	}
	if o.zone != "" {
		s.zones[o.zone]++
	}
	for len(s.seconds) <= o.second {
		s.seconds = append(s.seconds, nil)
	}
	sec := s.seconds[o.second]
	if sec == nil {
		sec = &second{hist: newSecHist(), zones: map[string]int64{}}
		s.seconds[o.second] = sec
	}
	sec.requests++
	if failed {
		sec.failed++
	}
	if redirect {
		sec.redirects++
	}
	_ = sec.hist.RecordValue(us)
	if o.zone != "" {
		sec.zones[o.zone]++
	}
}

// snapshot returns the shard's totals for progress reports.
func (s *shard) snapshot(into *hdr.Histogram) (requests, failed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	into.Merge(s.hist)
	return s.requests, s.failed
}
