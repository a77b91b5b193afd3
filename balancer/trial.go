package balancer

// A backend whose ejection has run its time does not come back to full
// traffic at once: it first serves one trial request (a half-open circuit).
// Least-connections would otherwise send a returning backend most new
// requests (it has none in flight), and when its whole zone returns, the
// zone's healthy share would pull every local request back to it: if the
// backend still hangs, a burst of requests waits on it again before
// detection notices. With a trial, a backend that still fails costs one
// request per ejection, and that request is one the proxy may replay
// elsewhere (the caller chooses: see PickTrial).
//
// The trial is live state of the backend (Backend.trial), outside its state
// word: the backend stays ejected, so zone shares, panic and readiness do
// not count it until the trial succeeds and health brings it up.

// Trial states of Backend.trial.
const (
	trialNone    uint32 = iota
	trialOpen           // waiting for a request to try the backend with
	trialRunning        // a trial request is in flight
)

// OpenTrial makes an ejected backend wait for a trial request; health calls
// it when the ejection's time is up. It reports whether a trial opened (the
// backend is ejected, in its pool and had none).
func (b *Backend) OpenTrial() bool {
	if b.State() != StateEjected || b.Removed() {
		return false
	}
	if !b.trial.CompareAndSwap(trialNone, trialOpen) {
		return false
	}
	b.pool.trials.Add(1)
	if b.word.Load() != uint32(StateEjected) {
		// Its state or flags changed since the check above; the writer
		// may have ended trials before this one opened.
		b.EndTrial()
		return false
	}
	return true
}

// EndTrial ends the backend's trial, open or running, if it has one. Health
// calls it when it decides (the backend comes up, or is ejected again); a
// change of the backend's state ends it too.
func (b *Backend) EndTrial() {
	if b.trial.Swap(trialNone) == trialOpen {
		b.pool.trials.Add(-1)
	}
}

// TrialRunning reports whether a trial request is in flight on the backend:
// its outcome is the trial's verdict.
func (b *Backend) TrialRunning() bool { return b.trial.Load() == trialRunning }

// Trial reports whether the backend waits for, or runs, a trial request.
func (b *Backend) Trial() bool { return b.trial.Load() != trialNone }

// PickTrial returns a lease on a backend waiting for its trial request, and
// true, if the pool has one that this request has not tried and that no
// operator drained. The request is counted on the backend like any other;
// releasing the lease before health decided opens the trial again. The
// caller offers only requests it could replay elsewhere, so a backend that
// still hangs costs a retry, not a failed request. It costs one atomic load
// while no trial is open.
func (p *Pool) PickTrial(tried *Tried) (Lease, bool) {
	if p.trials.Load() <= 0 {
		return Lease{}, false
	}
	s := p.current.Load()
	for i := range s.entries {
		b := s.entries[i].b
		if b.trial.Load() != trialOpen || b.word.Load() != uint32(StateEjected) || tried.Has(b) {
			continue
		}
		if !b.trial.CompareAndSwap(trialOpen, trialRunning) {
			continue
		}
		p.trials.Add(-1)
		b.inFlight.Add(1)
		l := Lease{b: b, trial: true}
		if b.word.Load()&flagRemoved != 0 {
			// Removed between the check and the count (see pick).
			l.Release()
			continue
		}
		return l, true
	}
	return Lease{}, false
}

// trialReleased opens the trial again if the trial request ended without a
// verdict (the client left, or another attempt won first).
func (b *Backend) trialReleased() {
	if !b.trial.CompareAndSwap(trialRunning, trialOpen) {
		return
	}
	b.pool.trials.Add(1)
	if b.word.Load() != uint32(StateEjected) {
		b.EndTrial() // drained, removed or brought up meanwhile
	}
}
