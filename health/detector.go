package health

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// sweepEvery is the longest the Detector's loop sleeps, so records of
// backends that left the pool (and their metric series) are dropped even
// when no request and no check touches the pool.
const sweepEvery = time.Second

// Detector is a pool's passive outlier detection: it ejects a backend that
// fails ConsecutiveFailures attempts of real traffic in a row, and brings it
// back when the ejection ends. Observe is safe for concurrent use; Run
// owns the timers that end ejections.
type Detector struct {
	t    *Tracker
	opts atomic.Pointer[PassiveOptions]
	wake chan struct{}
}

// NewDetector returns the outlier detection of t's pool.
func NewDetector(t *Tracker, o PassiveOptions) (*Detector, error) {
	d := &Detector{t: t, wake: make(chan struct{}, 1)}
	if err := d.Configure(o); err != nil {
		return nil, err
	}
	return d, nil
}

// Configure applies new options on reload. Failure counts, ejections in
// progress and back-off history are kept; a new Ejection applies to the
// next ejection.
func (d *Detector) Configure(o PassiveOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	d.opts.Store(&o)
	d.t.ejection.Store(int64(o.Ejection))
	d.poke()
	return nil
}

func (d *Detector) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Observe records the outcome of one attempt on b. The proxy calls it after
// every attempt, with failed true for a connect error, reset, timeout or a
// failing status, and never for a client that went away. Each failure in a
// row also sets the backend's soft penalty (balancer.Backend.Penalize), so
// picks steer away from it at once, long before it has failed often enough
// to be ejected; a success ends the penalty. While the backend's trial
// request runs (after an ejection, see balancer.PickTrial), an outcome on
// it is the trial's verdict: a success brings it up, a failure ejects it
// again at once. A success costs a map read and three atomic loads; only a
// failure that decides something takes the pool's lock.
func (d *Detector) Observe(b *balancer.Backend, failed bool) {
	r := d.t.lookup(b)
	if r == nil {
		return
	}
	if !failed {
		b.Forgive()
		if r.fails.Load() != 0 {
			r.fails.Store(0)
		}
		if b.TrialRunning() {
			d.trialPassed(r)
		}
		return
	}
	if b.TrialRunning() {
		d.trialFailed(r)
		return
	}
	n := r.fails.Add(1)
	b.Penalize(int(n))
	if o := d.opts.Load(); o.ConsecutiveFailures > 0 && n >= int64(o.ConsecutiveFailures) {
		d.eject(r, o, n)
	}
}

// trialPassed brings r's backend up: its trial request succeeded.
func (d *Detector) trialPassed(r *record) {
	t := d.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.b.State() == balancer.StateEjected && r.b.TrialRunning() {
		t.setStateLocked(r, balancer.StateUp, "trial request succeeded; ejection ended", time.Now())
	}
}

// trialFailed keeps r's backend ejected for another ejection of the same
// length: its trial request failed. It never came back, so this is the
// ejection going on, not a new one: the back-off, which is for a backend
// that fails again after it returned, does not grow, and the cap on
// ejected backends does not apply. A backend that stays down costs one
// trial request per ejection length, and one that heals is back within an
// ejection length of it.
func (d *Detector) trialFailed(r *record) {
	t := d.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.b.State() != balancer.StateEjected || !r.b.TrialRunning() {
		return
	}
	length := time.Duration(max(r.recent, 1)) * d.opts.Load().Ejection
	r.ejectedUntil = time.Now().Add(length)
	r.trialFrom = time.Time{}
	r.b.EndTrial()
	t.log.Info("backend still failing",
		"pool", t.pool.Name(), "backend", r.b.Address(), "zone", r.b.Zone(),
		"reason", fmt.Sprintf("trial request failed; ejected for %v more", length))
	d.poke()
}

// eject ejects r's backend if it is up and the pool's cap allows. Either
// way the failure count starts over, so a backend that cannot be ejected
// takes the lock once per threshold failures, not on every failure.
func (d *Detector) eject(r *record, o *PassiveOptions, n int64) {
	t := d.t
	t.mu.Lock()
	defer t.mu.Unlock()
	r.fails.Store(0)
	if r.b.State() != balancer.StateUp || r.b.Removed() {
		return
	}
	total, ejected := 0, 0
	for _, b := range t.pool.Backends() {
		total++
		if b.State() == balancer.StateEjected {
			ejected++
		}
	}
	if ejected > 0 && (ejected+1)*100 > o.MaxEjectedPercent*total {
		t.log.Debug("backend not ejected: pool at its ejection cap",
			"pool", t.pool.Name(), "backend", r.b.Address(), "zone", r.b.Zone(),
			"ejected", ejected, "total", total, "max_ejected_percent", o.MaxEjectedPercent)
		return
	}
	now := time.Now()
	k := min(r.decayLocked(now, o.Ejection)+1, MaxBackoff)
	length := time.Duration(k) * o.Ejection
	reason := fmt.Sprintf("%d consecutive failed attempts; ejected for %v", n, length)
	if t.setStateLocked(r, balancer.StateEjected, reason, now) {
		r.ejectLocked(now, o.Ejection)
		if !t.closed {
			t.m.ejections.WithLabelValues(t.pool.Name(), r.b.Address(), r.b.Zone()).Inc()
		}
		d.poke()
	}
}

// Run ends ejections when their time is up, until ctx ends. Call it once,
// in a goroutine the caller owns.
func (d *Detector) Run(ctx context.Context) {
	timer := time.NewTimer(sweepEvery)
	defer timer.Stop()
	for {
		wait := sweepEvery
		if next := d.sweep(time.Now()); !next.IsZero() {
			wait = min(wait, time.Until(next))
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-d.wake:
		}
	}
}

// sweep ends every ejection whose time is up by now and returns the
// earliest moment it has more to do, or zero if nothing waits. An ejection
// whose time is up first waits for a trial request (balancer.OpenTrial);
// one that no request came to try within another ejection length comes
// back as before trials, with its full share.
func (d *Detector) sweep(now time.Time) time.Time {
	t := d.t
	s := t.sync()
	base := d.opts.Load().Ejection
	t.mu.Lock()
	defer t.mu.Unlock()
	var next time.Time
	soonest := func(at time.Time) {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	for _, r := range s.recs {
		if r.b.State() != balancer.StateEjected || r.ejectedUntil.IsZero() {
			continue
		}
		switch {
		case now.Before(r.ejectedUntil):
			soonest(r.ejectedUntil)
		case r.trialFrom.IsZero():
			if r.b.OpenTrial() {
				r.trialFrom = now
				t.log.Debug("backend waits for a trial request",
					"pool", t.pool.Name(), "backend", r.b.Address(), "zone", r.b.Zone())
				soonest(now.Add(base))
			}
		case !now.Before(r.trialFrom.Add(base)) && !r.b.TrialRunning():
			t.setStateLocked(r, balancer.StateUp, "ejection ended; no request came to try it with", now)
		default:
			soonest(r.trialFrom.Add(base))
		}
	}
	return next
}
