package health

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// Tracker is one pool's health bookkeeping, shared by its Checker and
// Detector. It serialises the state changes they make, so a decision read
// and the write that follows it cannot interleave with the other's (an
// ejection ending cannot undo an active Down). Each change is logged once
// with its reason and counted.
//
// Per-backend counters live in records keyed by *balancer.Backend: the
// balancer keeps a Backend for as long as its address stays in the pool, so
// the counters survive reloads and discovery updates with it. Records of
// backends that leave are dropped, with their metric series, the next time
// the Checker or Detector looks at the set.
type Tracker struct {
	pool *balancer.Pool
	log  *slog.Logger
	m    *Metrics

	// ejection is the Detector's base ejection length in nanoseconds, read
	// to decay recent-ejection counts for Info.
	ejection atomic.Int64

	mu     sync.Mutex // serialises state changes, record fields and rebuilds
	snap   atomic.Pointer[snapshot]
	closed bool
}

// snapshot is an immutable map of the pool's current backends to their
// records, read without locks by Detector.Observe.
type snapshot struct {
	recs map[*balancer.Backend]*record
}

// record is one backend's health counters.
type record struct {
	b *balancer.Backend
	// fails counts consecutive failed attempts reported to Observe. It is
	// the only field the request path writes.
	fails atomic.Int64

	// Guarded by Tracker.mu.
	lastCheck    time.Time
	lastErr      string
	okRun        int       // consecutive passing checks
	failRun      int       // consecutive failing checks
	recent       int       // recent ejections: the next back-off multiplier
	decayFrom    time.Time // when recent last decayed, or the last ejection ended
	total        int       // ejections since the record was created
	ejectedUntil time.Time // zero unless ejected
	trialFrom    time.Time // when the backend began to wait for a trial request; zero if not
}

// ejectLocked counts an ejection of r's backend starting now, with the
// back-off of its recent ejections, sets when it ends and returns its
// length. The caller holds Tracker.mu and has made the backend ejected.
func (r *record) ejectLocked(now time.Time, base time.Duration) time.Duration {
	k := min(r.decayLocked(now, base)+1, MaxBackoff)
	r.recent = k
	r.total++
	length := time.Duration(k) * base
	r.ejectedUntil = now.Add(length)
	r.trialFrom = time.Time{}
	return length
}

// NewTracker returns the health bookkeeping of pool. A nil logger discards;
// nil metrics are created unregistered.
func NewTracker(pool *balancer.Pool, logger *slog.Logger, m *Metrics) *Tracker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	t := &Tracker{pool: pool, log: logger, m: m}
	t.snap.Store(&snapshot{recs: map[*balancer.Backend]*record{}})
	return t
}

// Pool returns the tracked pool.
func (t *Tracker) Pool() *balancer.Pool { return t.pool }

// Close forgets the pool's metric series; call it once the pool is dropped
// and its Checker and Detector have stopped.
func (t *Tracker) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.m.forgetPool(t.pool.Name())
}

// lookup returns b's record, catching up with the pool's set if b is new
// to it. It returns nil for a backend that left the set.
func (t *Tracker) lookup(b *balancer.Backend) *record {
	if r := t.snap.Load().recs[b]; r != nil {
		return r
	}
	if b.Removed() {
		return nil
	}
	return t.sync().recs[b]
}

// sync returns the records of the pool's current set, rebuilding them if
// the set changed: records of backends that stay are kept, new backends get
// fresh ones, and the metric series of addresses that left are deleted.
func (t *Tracker) sync() *snapshot {
	cur := t.pool.Backends()
	if s := t.snap.Load(); s.matches(cur) {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.snap.Load()
	if old.matches(cur) {
		return old
	}
	next := &snapshot{recs: make(map[*balancer.Backend]*record, len(cur))}
	addrs := make(map[string]bool, len(cur))
	now := time.Now()
	for _, b := range cur {
		r := old.recs[b]
		if r == nil {
			r = &record{b: b}
			if b.State() == balancer.StateEjected {
				// A backend that left while ejected and came back before
				// it retired: its ejection ends one base length from now.
				r.ejectedUntil = now.Add(time.Duration(t.ejection.Load()))
				r.recent, r.total = 1, 1
			}
		}
		next.recs[b] = r
		addrs[b.Address()] = true
	}
	if !t.closed {
		for b := range old.recs {
			if !addrs[b.Address()] {
				t.m.forgetBackend(t.pool.Name(), b.Address())
			}
		}
	}
	t.snap.Store(next)
	return next
}

func (s *snapshot) matches(cur []*balancer.Backend) bool {
	if len(s.recs) != len(cur) {
		return false
	}
	for _, b := range cur {
		if s.recs[b] == nil {
			return false
		}
	}
	return true
}

// setStateLocked moves r's backend to state to, and logs and counts the
// change if there was one. The caller holds t.mu.
func (t *Tracker) setStateLocked(r *record, to balancer.State, reason string, now time.Time) bool {
	from, changed := r.b.SetState(to)
	if !changed {
		return false
	}
	if from == balancer.StateEjected {
		r.ejectedUntil = time.Time{}
		r.trialFrom = time.Time{}
		r.decayFrom = now
	}
	if to == balancer.StateUp {
		r.fails.Store(0)
	}
	zone := r.b.Zone()
	t.log.Info("backend health changed",
		"pool", t.pool.Name(), "backend", r.b.Address(), "zone", zone,
		"from", from.String(), "to", to.String(), "reason", reason)
	if !t.closed {
		t.m.transitions.WithLabelValues(t.pool.Name(), r.b.Address(), zone, to.String()).Inc()
	}
	return true
}

// decayLocked lowers r.recent by one for every ejection-long period spent
// out of ejection since r.decayFrom, and returns it. The caller holds t.mu.
func (r *record) decayLocked(now time.Time, base time.Duration) int {
	if r.recent == 0 || base <= 0 || r.b.State() == balancer.StateEjected {
		return r.recent
	}
	if n := int(now.Sub(r.decayFrom) / base); n > 0 {
		r.recent = max(0, r.recent-n)
		r.decayFrom = r.decayFrom.Add(time.Duration(n) * base)
	}
	return r.recent
}

// ClearActive brings every Down or Pending backend Up and forgets the check
// counters. Call it after stopping a Checker because a reload turned active
// checks off: nothing else would ever bring those backends back.
func (t *Tracker) ClearActive() {
	s := t.sync()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for _, r := range s.recs {
		r.okRun, r.failRun, r.lastErr = 0, 0, ""
		if st := r.b.State(); st == balancer.StateDown || st == balancer.StatePending {
			t.setStateLocked(r, balancer.StateUp, "active checks turned off", now)
		}
	}
}
