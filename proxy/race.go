package proxy

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// race is one request's attempts. The first runs on the request's own
// goroutine. An attempt that fails is retried elsewhere on the goroutine
// it ran on, when the retry decision allows. An attempt of a replayable
// request whose per-try time runs out, or whose backend health or an
// operator takes out, keeps running and starts a hedge: the next attempt,
// in a zone not tried yet, on a goroutine of its own. The first response
// head wins; the other attempts are cancelled and their connections
// closed; only the winner's bytes reach the client. The request's
// goroutine returns only once every attempt but the winner has ended and
// every hedge's goroutine has returned, so nothing of a request outlives
// it.
//
// Locks: a lifetime's lock may be held while taking the race's (a timer or
// a watch firing, see attempt), never the other way round; so the race's
// lock is never held while ending or finishing an attempt, nor while
// telling passive health (which may take a backend out and fire watches).
//
// A race lives in its pooled exchange. That is safe because whatever can
// reach it late (a timer, a watch) goes through an attempt's lifetime,
// under its lock, and every attempt but the winner has finished, and the
// winner has its head, before the exchange is reused.
type race struct {
	s   *Server
	x   *exchange
	out *http.Request // the request as outbound made it; later attempts copy it

	deadline   time.Time
	perTry     time.Duration // 0: no per-try time
	hedgeDelay time.Duration // 0: no hedging by delay (see Hedge)
	hasKey     bool          // the request carries the pool's idempotency key
	replayable bool          // a request that may run more than one attempt (method or key, and body)
	hedging    bool          // and attempts hedge when their per-try time or hedge delay runs out

	mu       sync.Mutex
	cond     sync.Cond
	tried    balancer.Tried
	started  int // attempts started, or decided and about to start
	running  int // goroutines running attempts (the request's own included)
	live     [maxLiveAttempts]*attempt
	outTaken bool     // the first attempt sends out itself
	decided  bool     // the request's goroutine stopped waiting: nothing new starts
	fallback *attempt // a retryable status not retried: the answer if nothing does better
	won      *attempt // the attempt whose response goes to the client
	last     *attempt // the attempt that failed last
	refused  string   // why the last retry or hedge was refused
	byDelay  int      // hedges started by the hedge delay
	hedges   sync.WaitGroup
	ctx      context.Context // hedges' picks; cancelled when the race is decided
	cancel   context.CancelFunc

	// key is the request's hash key and sticky pin (affinity.go), set
	// before the first pick and only read after; keyed says the pool
	// asked for one, under affinity.
	key      balancer.Key
	keyed    bool
	affinity *balancer.Affinity
}

// maxLiveAttempts bounds the attempts of one request in flight at once;
// retry.attempts is at most 10.
const maxLiveAttempts = 10

func (r *race) init(s *Server, x *exchange, out *http.Request) {
	p := x.pool
	r.s, r.x, r.out = s, x, out
	r.cond.L = &r.mu
	r.deadline = x.start.Add(p.Timeouts.Request)
	if p.Timeouts.Request <= 0 {
		r.deadline = x.start.Add(24 * time.Hour)
	}
	r.hasKey = p.Retry.IdempotencyHeader != "" && out.Header.Get(p.Retry.IdempotencyHeader) != ""
	r.replayable = p.Retry.Attempts > 1 && x.body.replayable && (Idempotent(out.Method) || r.hasKey)
	if r.replayable && p.Retry.On[CauseTimeout] {
		r.perTry = p.perTryNow()
		r.hedgeDelay = p.hedgeDelayNow()
		r.hedging = r.perTry > 0 || r.hedgeDelay > 0
	}
}

// loop runs attempts one after another on the calling goroutine, starting
// with lease, until one wins, loses, or fails with no retry allowed. from
// is the cause that made the first of them a retry (CauseNone for the
// request's first attempt), fromZone the zone it left.
func (r *race) loop(lease balancer.Lease, from Cause, fromZone string, hedge, own bool) {
	for {
		a := r.begin(lease, from, fromZone, hedge, own)
		if a == nil {
			return
		}
		a.send()
		if !r.end(a) {
			return
		}
		var err error
		lease, err = r.pick()
		if err != nil {
			r.noBackend(a)
			return
		}
		r.discard(a)
		from, fromZone, hedge = a.cause, a.lease.Backend().Zone(), false
	}
}

// noBackend ends a's goroutine's loop when the retry decided after a
// found no backend to go to: a's response, if it had one (a retryable
// status), is the answer after all, unless another attempt won.
func (r *race) noBackend(a *attempt) {
	r.mu.Lock()
	if r.won == nil {
		r.refused = RefusedNoBackend
		r.countRefusal(RefusedNoBackend)
	}
	r.started--
	kept := r.won == nil && a.resp != nil && r.keepLocked(a)
	r.exitLocked()
	r.mu.Unlock()
	if !kept {
		r.discard(a)
	}
}

// keepLocked keeps a, a response with a retryable status that will not
// be retried, as the answer if no attempt still running does better (see
// wait); the first kept wins. It reports whether a was kept. The caller
// holds r.mu.
func (r *race) keepLocked(a *attempt) bool {
	if r.fallback != nil {
		return false
	}
	r.fallback = a
	return true
}

// discard ends an attempt that does not win: its response, if any, is
// read a little (so a healthy connection can be reused) and closed, its
// lifetime ends and its backend's count drops.
func (r *race) discard(a *attempt) {
	if a.resp != nil {
		drain(a.resp.Body)
	}
	a.finish()
	a.lease.Release()
}

// begin makes and registers an attempt on lease's backend and starts its
// lifetime. It returns nil, having released the lease and left the race,
// when the race is already won or over.
func (r *race) begin(lease balancer.Lease, from Cause, fromZone string, hedge, own bool) *attempt {
	x := r.x
	p := x.pool
	b := lease.Backend()
	a := &attempt{r: r, lease: lease, start: time.Now(), own: own, hedge: hedge, from: from}
	r.mu.Lock()
	if r.won != nil || r.decided {
		// A retry or hedge whose pick returned after another attempt won:
		// it sends nothing, and its goroutine leaves the race.
		r.started--
		r.exitLocked()
		r.mu.Unlock()
		lease.Release()
		return nil
	}
	r.tried.Add(b)
	// An attempt hedges by delay when the delay comes before its per-try
	// time and the request may start another hedge by delay.
	if d := r.hedgeDelay; d > 0 && (r.perTry == 0 || d < r.perTry) && r.byDelay < p.Hedge.Max {
		a.hedgeAt = d
	}
	a.slot = x.slot()
	first := !r.outTaken
	r.outTaken = true
	for i := range r.live {
		if r.live[i] == nil {
			r.live[i] = a
			break
		}
	}
	r.mu.Unlock()
	if from != CauseNone && p.metrics != nil {
		p.metrics.retries.get(retryKey{from: fromZone, to: b.Zone(), cause: from}).Inc()
	}
	if first {
		// The first attempt sends the request outbound made; later ones
		// copy it, since an earlier attempt's transport may still read it.
		// Its header map is shared: nothing writes to it once made.
		a.req = r.out
	} else {
		a.req = copyOutbound(r.out)
		a.req.Body = x.body.reader()
	}
	// Before the lifetime starts: a hedge its timer starts copies the
	// request the first attempt sends.
	a.req.URL.Host = b.Address()
	limit := time.Until(r.deadline)
	var fire func()
	if r.replayable {
		a.shared = true
		a.watch.W = a
		fire = a.perTryFired
		t := r.perTry
		if a.hedgeAt > 0 {
			t = a.hedgeAt
		}
		if t > 0 && t < limit {
			limit = t
		}
	}
	if !lease.Trial() {
		a.out = a
	}
	a.begin(x.ctx, limit, fire)
	if limit <= 0 {
		// The request's time ran out before this try began (a slow
		// client's body took it): the try fails at once as timed out.
		a.end(errPerTryTimeout)
	}
	if r.replayable {
		lease.Watch(&a.watch)
	}
	return a
}

// end settles an attempt that returned: it wins, loses to one that won
// first, or failed; a failure is retried on this goroutine when end
// reports true (a slot for the retry is then taken, and the caller
// discards the attempt once it has a backend for the retry). Everything
// about the attempt that needs no lock (passive health, its lease, its
// lifetime) is done after the race's lock is released.
func (r *race) end(a *attempt) (retry bool) {
	x := r.x
	p := x.pool
	var losers []*attempt
	kept := false
	moved := a.cause == CauseUnsent && a.movedAway() // its watch started a hedge already
	r.mu.Lock()
	r.remove(a)
	lost := r.won != nil
	switch {
	case lost:
		// Too late: another attempt won while this one ran. One that was
		// overtaken (the winner started after it) and ran past its
		// per-try time, by a winner that answered within it, was slower
		// than the zone it hedged to: that counts against its backend, as
		// a timeout. When the winner took as long, the whole pool was
		// slow (a surge the proxy itself queues, every zone slow): that
		// is no backend's fault, and ejecting for it would take capacity
		// away when it is most needed.
		overtaken := a.cause == CauseCancelled && r.won.start.After(a.start)
		switch {
		case overtaken && r.perTry > 0 && a.took >= r.perTry:
			if r.won.took < r.perTry {
				a.cause = CauseTimeout
			}
		case overtaken && a.hedgeAt > 0 && a.took >= a.hedgeAt:
			a.lease.Backend().Overtaken()
		}
	case a.cause == CauseNone:
		r.won = a
		losers = r.liveLocked()
	case a.cause == CauseUnsent:
		// Nothing was sent: the attempt counts neither against the
		// attempts nor the budget, and moves unless its watch moved it.
		r.started--
		if retry = !moved; retry {
			r.started++
		}
		r.last, x.final = a, a.cause
	default:
		v := Decide(&p.Retry, Attempt{
			Method:            r.out.Method,
			HasIdempotencyKey: r.hasKey,
			BodyReplayable:    x.body.replayable || a.cause == CauseConnect && x.body.untouched(),
			Cause:             a.cause,
			Tries:             r.started,
			TimeLeft:          time.Until(r.deadline),
			BudgetAllows:      true, // checked last, below: a withdrawal is not pure
		})
		if v == Retry && !p.budget.withdraw(time.Since(processStart), &p.Retry) {
			v = NoRetryBudget
		}
		if why := v.Refusal(); why != "" {
			r.refused = why
			r.countRefusal(why)
		}
		switch {
		case v == Retry:
			retry = true
			r.started++
		case a.resp != nil:
			// A retryable status that may not be retried: the answer,
			// unless an attempt still running does better.
			kept = r.keepLocked(a)
		}
		r.last, x.final = a, a.cause
	}
	x.record(a.slot, a.lease.Backend(), a.cause, a.status, a.took, a.hedge)
	if !retry {
		r.exitLocked()
	}
	won := r.won == a
	if won && r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()

	for _, l := range losers {
		l.end(errLostRace)
	}
	b := a.lease.Backend()
	if m := p.metrics; m != nil {
		m.attempts.get(attemptKey{zone: b.Zone(), cause: a.cause}).Inc()
		if a.hedge {
			m.hedge(won)
		}
	}
	if p.Outlier != nil && a.cause != CauseClientGone && a.cause != CauseCancelled && a.cause != CauseUnsent {
		p.Outlier.Observe(b, a.cause.BackendFault() || p.failStatus(a.status))
	}
	if !won && !retry && !kept {
		r.discard(a)
	}
	return retry
}

// exitLocked counts the calling goroutine out of the race; the request's
// goroutine wakes to see whether the race is decided. The caller holds
// r.mu.
func (r *race) exitLocked() {
	r.running--
	r.cond.Broadcast()
}

// hedge starts another attempt beside a, whose per-try time or hedge
// delay (byDelay) ran out (CauseTimeout) or whose backend went out
// (CauseOut), if the retry decision and the budget allow, and for a hedge
// by delay, the pool's hedge.max. It reports whether it started one. The
// caller holds a's lifetime lock.
func (r *race) hedge(a *attempt, why Cause, byDelay bool) bool {
	x := r.x
	p := x.pool
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.won != nil || r.decided || byDelay && r.byDelay >= p.Hedge.Max {
		return false
	}
	v := Decide(&p.Retry, Attempt{
		Method:            r.out.Method,
		HasIdempotencyKey: r.hasKey,
		BodyReplayable:    x.body.replayable,
		Cause:             why,
		Tries:             r.started,
		TimeLeft:          time.Until(r.deadline),
		BudgetAllows:      true,
	})
	if v == Retry && !p.budget.withdraw(time.Since(processStart), &p.Retry) {
		v = NoRetryBudget
	}
	if v != Retry {
		if why := v.Refusal(); why != "" {
			r.refused = why
			r.countRefusal(why)
		}
		return false
	}
	if byDelay {
		r.byDelay++
	}
	r.started++
	r.running++
	if r.ctx == nil {
		r.ctx, r.cancel = context.WithCancel(x.ctx)
	}
	from := a.lease.Backend().Zone()
	r.hedges.Add(1)
	go r.runHedge(why, from)
	return true
}

// runHedge is a hedge's goroutine: it picks a backend and runs attempts
// there until the race no longer needs it.
func (r *race) runHedge(why Cause, fromZone string) {
	defer r.hedges.Done()
	lease, err := r.pick()
	if err != nil {
		r.mu.Lock()
		if r.won == nil {
			r.refused = RefusedNoBackend
			r.countRefusal(RefusedNoBackend)
		}
		r.started--
		r.exitLocked()
		r.mu.Unlock()
		return
	}
	r.loop(lease, why, fromZone, true, false)
}

// pick chooses the backend of a retry or hedge: a zone not tried yet if
// one has a healthy backend, else an untried backend anywhere.
func (r *race) pick() (balancer.Lease, error) {
	r.mu.Lock()
	tried := r.tried
	ctx := r.ctx
	r.mu.Unlock()
	if ctx == nil {
		ctx = r.x.ctx
	}
	return r.x.pool.Balancer.PickKeyed(ctx, &tried, r.keyArg())
}

// wait blocks until an attempt won or every attempt ended, then until every
// hedge's goroutine returned, and returns the winner (or the response with
// a retryable status kept when nothing did better), or the attempt that
// failed last. From then on nothing new starts: a late timer or watch
// finds the race decided.
func (r *race) wait() (won, last *attempt) {
	r.mu.Lock()
	for r.won == nil && r.running > 0 {
		r.cond.Wait()
	}
	r.decided = true
	if r.won == nil {
		r.won = r.fallback // a retryable status nothing did better than
	}
	won, last = r.won, r.last
	losers := r.liveLocked()
	spare := r.fallback
	if spare == won {
		spare = nil
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	for _, l := range losers {
		l.end(errLostRace)
	}
	r.hedges.Wait()
	if spare != nil {
		r.discard(spare)
	}
	return won, last
}

// remove takes a out of the attempts in flight. The caller holds r.mu.
func (r *race) remove(a *attempt) {
	for i := range r.live {
		if r.live[i] == a {
			r.live[i] = nil
			return
		}
	}
}

// liveLocked returns the attempts in flight, to cancel. The caller holds
// r.mu.
func (r *race) liveLocked() []*attempt {
	var out []*attempt
	for _, a := range r.live {
		if a != nil {
			out = append(out, a)
		}
	}
	return out
}

// countRefusal counts a refused retry or hedge. The caller holds r.mu.
func (r *race) countRefusal(why string) {
	if m := r.x.pool.metrics; m != nil {
		m.refused(why)
	}
}
