package health

import (
	"slices"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// Info is one backend's health as the admin status shows it.
type Info struct {
	Address string `json:"address"`
	Zone    string `json:"zone"`
	State   string `json:"state"`
	Drained bool   `json:"drained"`
	// InFlight is the requests the backend serves now.
	InFlight int64 `json:"in_flight"`
	// LastCheck is when the last active check finished; zero if none ran.
	LastCheck time.Time `json:"last_check,omitzero"`
	// LastError is the last active check's error; "" if it passed.
	LastError string `json:"last_error,omitempty"`
	// CheckSuccesses and CheckFailures count consecutive active results.
	CheckSuccesses int `json:"check_successes"`
	CheckFailures  int `json:"check_failures"`
	// PassiveFailures counts consecutive failed attempts of real traffic.
	PassiveFailures int64 `json:"passive_failures"`
	// Penalty is the soft penalty of recent failed attempts, in
	// connections, decayed to now (balancer.Backend.Penalize).
	Penalty int64 `json:"penalty"`
	// RecentEjections is the back-off multiplier of the next ejection,
	// after decay; Ejections counts every ejection since it joined.
	RecentEjections int `json:"recent_ejections"`
	Ejections       int `json:"ejections"`
	// EjectedUntil is when the current ejection ends; zero if not ejected.
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	// Trial is "waiting" while an ejected backend whose time is up waits
	// for a trial request, "running" while one is in flight; "" otherwise.
	Trial string `json:"trial,omitempty"`
}

// Info returns the health of the pool's backend with the address.
func (t *Tracker) Info(addr string) (Info, bool) {
	s := t.sync()
	for b, r := range s.recs {
		if b.Address() == addr {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.infoLocked(r, time.Now()), true
		}
	}
	return Info{}, false
}

// Infos returns the health of every backend of the pool, by address.
func (t *Tracker) Infos() []Info {
	s := t.sync()
	now := time.Now()
	out := make([]Info, 0, len(s.recs))
	t.mu.Lock()
	for _, r := range s.recs {
		out = append(out, t.infoLocked(r, now))
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Address, b.Address) })
	return out
}

func (t *Tracker) infoLocked(r *record, now time.Time) Info {
	b := r.b
	i := Info{
		Address:         b.Address(),
		Zone:            b.Zone(),
		State:           b.State().String(),
		Drained:         b.Drained(),
		InFlight:        b.InFlight(),
		LastCheck:       r.lastCheck,
		LastError:       r.lastErr,
		CheckSuccesses:  r.okRun,
		CheckFailures:   r.failRun,
		PassiveFailures: r.fails.Load(),
		Penalty:         b.Penalty(),
		RecentEjections: r.decayLocked(now, time.Duration(t.ejection.Load())),
		Ejections:       r.total,
	}
	if b.State() == balancer.StateEjected {
		i.EjectedUntil = r.ejectedUntil
	}
	switch {
	case b.TrialRunning():
		i.Trial = "running"
	case b.Trial():
		i.Trial = "waiting"
	}
	return i
}
