package health

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// setPollEvery is the longest the Checker's loop sleeps before it looks at
// the pool's set again, so a backend that joins waits at most this long for
// its first check (a Pending one takes no traffic until then).
const setPollEvery = 200 * time.Millisecond

// Checker runs a pool's active health checks. Each backend is checked every
// Interval ±10%, at most MaxConcurrent checks at once however large the
// pool, and at most one check per backend at a time. It follows the pool's
// set on every round: new backends are checked (a Pending one at once),
// backends that left are forgotten.
//
// Start-up: backends of the first set are Up and go Down only after Fall
// failures, so a restart does not black out a region; their first checks
// are spread over the first tenth of an interval. A backend that joins a
// serving pool waits in Pending: its first check moves it Up if it passes
// and Down if it fails.
type Checker struct {
	t      *Tracker
	opts   atomic.Pointer[ActiveOptions]
	client atomic.Pointer[http.Client]
	jitter func() float64
	wake   chan struct{}
}

// CheckerOption customises a Checker; used by tests.
type CheckerOption func(*Checker)

// WithJitter injects the [0,1) source of the ±10% interval jitter; it is
// called from one goroutine only.
func WithJitter(f func() float64) CheckerOption { return func(c *Checker) { c.jitter = f } }

// NewChecker returns the active checker of t's pool. The caller also sets
// balancer.Options.ActiveChecks on the pool, so backends that join later
// wait for their first passing check.
func NewChecker(t *Tracker, o ActiveOptions, opts ...CheckerOption) (*Checker, error) {
	c := &Checker{t: t, jitter: rand.Float64, wake: make(chan struct{}, 1)}
	for _, f := range opts {
		f(c)
	}
	if err := c.Configure(o); err != nil {
		return nil, err
	}
	return c, nil
}

// Configure applies new options on reload. Rise and fall counters are kept;
// checks in flight finish with the options they started with; a shorter
// interval takes effect at once.
func (c *Checker) Configure(o ActiveOptions) error {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	c.client.Store(newClient(o))
	c.opts.Store(&o)
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// slot is the loop's schedule for one backend.
type slot struct {
	due     time.Time
	started time.Time // when the last check began
	busy    bool
}

// Run checks the pool's backends until ctx ends, then waits for the checks
// in flight, which ctx cancels. Call it once, in a goroutine the caller owns.
func (c *Checker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan *balancer.Backend)
	sched := map[*balancer.Backend]*slot{}
	inFlight := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		o := c.opts.Load()
		now := time.Now()
		s := c.t.sync()
		for b, r := range s.recs {
			if sched[b] == nil {
				sched[b] = &slot{due: c.firstDue(r, o, now)}
			}
		}
		var due []*balancer.Backend
		var next time.Time
		for b, sl := range sched {
			if s.recs[b] == nil {
				if !sl.busy {
					delete(sched, b)
				}
				continue
			}
			if sl.busy {
				continue
			}
			if limit := now.Add(o.Interval * 11 / 10); sl.due.After(limit) {
				sl.due = limit // the interval was shortened by a reload
			}
			if !now.Before(sl.due) {
				due = append(due, b)
			} else if next.IsZero() || sl.due.Before(next) {
				next = sl.due
			}
		}
		slices.SortFunc(due, func(a, b *balancer.Backend) int { return sched[a].due.Compare(sched[b].due) })
		for _, b := range due {
			if inFlight >= o.MaxConcurrent {
				break
			}
			sl := sched[b]
			sl.busy = true
			sl.started = now
			sl.due = now.Add(c.interval(o.Interval))
			inFlight++
			wg.Add(1)
			go func(r *record) {
				defer wg.Done()
				c.check(ctx, r)
				select {
				case done <- r.b:
				case <-ctx.Done():
				}
			}(s.recs[b])
		}
		if poll := now.Add(setPollEvery); next.IsZero() || next.After(poll) {
			next = poll
		}
		timer.Reset(next.Sub(now))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-c.wake:
		case b := <-done:
			inFlight--
			sl := sched[b]
			sl.busy = false
			if r := s.recs[b]; r != nil && o.FastInterval < o.Interval && c.t.inDoubt(r) {
				if fast := sl.started.Add(c.interval(o.FastInterval)); fast.Before(sl.due) {
					sl.due = fast
				}
			}
		}
	}
}

// firstDue is when a backend new to the loop gets its first check.
func (c *Checker) firstDue(r *record, o *ActiveOptions, now time.Time) time.Time {
	if r.b.State() == balancer.StatePending {
		return now
	}
	return now.Add(time.Duration(c.jitter() * float64(o.Interval) / 10))
}

// interval returns d with ±10% jitter.
func (c *Checker) interval(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*c.jitter()))
}

// check probes r's backend once and applies the result. A panic in it is
// logged, so one bad check cannot take the proxy down.
func (c *Checker) check(ctx context.Context, r *record) {
	defer func() {
		if v := recover(); v != nil {
			c.t.log.Error("health check panicked", "pool", c.t.pool.Name(), "backend", r.b.Address(), "panic", v)
		}
	}()
	o := c.opts.Load()
	err := probe(ctx, c.client.Load(), o, r.b.Address())
	if ctx.Err() != nil {
		return // stopping: a cancelled check says nothing about the backend
	}
	c.apply(r, o, err, time.Now())
}

// apply counts one check result and moves the backend if a threshold was
// crossed: Pending goes Up on its first pass and Down on its first failure;
// Down goes Up after Rise passes; Up and Ejected go Down after Fall
// failures; a pass lifts an ejection at once.
func (c *Checker) apply(r *record, o *ActiveOptions, err error, now time.Time) {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.b.Removed() {
		return
	}
	r.lastCheck = now
	st := r.b.State()
	if err == nil {
		r.lastErr = ""
		r.okRun++
		r.failRun = 0
		switch {
		case st == balancer.StatePending:
			t.setStateLocked(r, balancer.StateUp, "first check passed", now)
		case st == balancer.StateEjected:
			t.setStateLocked(r, balancer.StateUp, "check passed; ejection lifted", now)
		case st == balancer.StateDown && r.okRun >= o.Rise:
			t.setStateLocked(r, balancer.StateUp, fmt.Sprintf("%d checks passed in a row", r.okRun), now)
		}
		return
	}
	r.lastErr = err.Error()
	r.failRun++
	r.okRun = 0
	switch {
	case st == balancer.StatePending:
		t.setStateLocked(r, balancer.StateDown, "first check failed: "+r.lastErr, now)
	case (st == balancer.StateUp || st == balancer.StateEjected) && r.failRun >= o.Fall:
		t.setStateLocked(r, balancer.StateDown, fmt.Sprintf("%d checks failed in a row: %s", r.failRun, r.lastErr), now)
	}
}

// inDoubt reports whether r's last checks point away from its state: a
// failure while it still takes traffic, or a pass while it is Down.
func (t *Tracker) inDoubt(r *record) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch r.b.State() {
	case balancer.StateUp, balancer.StateEjected:
		return r.failRun > 0
	case balancer.StateDown:
		return r.okRun > 0
	}
	return false
}

// checkNow probes b once and applies the result; tests drive rise and fall
// with it step by step.
func (c *Checker) checkNow(ctx context.Context, b *balancer.Backend) error {
	r := c.t.lookup(b)
	if r == nil {
		return fmt.Errorf("checking health of %s: not in pool %s", b.Address(), c.t.pool.Name())
	}
	o := c.opts.Load()
	err := probe(ctx, c.client.Load(), o, b.Address())
	c.apply(r, o, err, time.Now())
	return err
}
