package instance

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/tls/acme"
	"github.com/hashicorp/consul/api"
)

// acmeRef is a TLS listener's ACME manager as its certificate sources see
// it: every handshake asks the manager in force, and a reload that changes
// the listener's acme block swaps the manager without a new socket. The
// ref outlives its slot when a reload rebinds the listener's address: the
// slot that replaces it shares it.
type acmeRef struct {
	m atomic.Pointer[acme.Manager]
	// prev is the manager m replaced, stopped: its certificates serve a
	// name m manages but has not obtained yet (a new CA, a new storage),
	// so a changed acme block never takes a name down.
	prev atomic.Pointer[acme.Manager]
	key  string // the settings of m; read and written under the reload lock
}

// Certificate implements edgetls.Managed.
func (r *acmeRef) Certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, bool, error) {
	m := r.m.Load()
	if m == nil {
		return nil, false, nil
	}
	cert, ok, err := m.Certificate(hello)
	if ok && err != nil {
		if prev := r.prev.Load(); prev != nil {
			if c, ok, perr := prev.Certificate(hello); ok && perr == nil {
				return c, true, nil
			}
		}
	}
	return cert, ok, err
}

// stop stops the manager in force and forgets both; the listener left.
func (r *acmeRef) stop() {
	if m := r.m.Swap(nil); m != nil {
		m.Stop()
	}
	r.prev.Store(nil)
}

// acmePlan is a manager a plan made for a listener whose acme block is new
// or changed; Commit puts it in force, Discard stops it.
type acmePlan struct {
	addr string
	key  string
	m    *acme.Manager
}

// acmeLoadWait bounds how long a plan reads a new manager's certificates
// from storage, so it serves them from the first handshake.
const acmeLoadWait = 2 * time.Second

// planACME makes a manager for each TLS listener of p whose acme settings
// are not those of the manager in force on its slot. Slots are bound
// already, so the challenge addresses are the real ones.
func (i *Instance) planACME(p *Plan) error {
	cfg := p.cfg
	httpAddr := ""
	for j := range cfg.Listeners {
		if l := &cfg.Listeners[j]; l.TLS == nil {
			httpAddr = p.next[l.Address].bound.String()
			break
		}
	}
	for j := range cfg.Listeners {
		l := &cfg.Listeners[j]
		if l.TLS == nil || l.TLS.ACME == nil {
			continue
		}
		s := p.next[l.Address]
		a := l.TLS.ACME
		set := acme.Settings{
			Listener: l.Name, Names: a.Names, Directory: a.Directory, Email: a.Email,
			DirectoryCAFile: a.DirectoryCAFile,
			HTTP01:          slices.Contains(a.Challenges, configs.ChallengeHTTP01),
			TLSALPN01:       slices.Contains(a.Challenges, configs.ChallengeTLSALPN01),
			HTTPAddr:        httpAddr, TLSAddr: s.bound.String(), CheckInterval: a.CheckInterval,
		}
		shared := p.consul != nil && a.ConsulPrefix != "" && a.ConsulPrefix != configs.OverridesNotShared
		key := fmt.Sprintf("%+v|%v|%p|%s|%s", set, shared, p.consul, a.ConsulPrefix, a.Storage)
		if s.acme.key == key && s.acme.m.Load() != nil {
			continue
		}
		m, err := newManager(set, shared, p.consul, a, i)
		if err != nil {
			return fmt.Errorf("listener %s: %w", l.Name, err)
		}
		p.acme = append(p.acme, acmePlan{addr: l.Address, key: key, m: m})
		ctx, cancel := context.WithTimeout(i.ctx, acmeLoadWait)
		m.Load(ctx)
		cancel()
	}
	return nil
}

func newManager(set acme.Settings, shared bool, client *api.Client, a *configs.ACME, i *Instance) (*acme.Manager, error) {
	deps := acme.Deps{Metrics: i.acmeMetrics, Logger: i.logger}
	var local acme.Storage
	if a.Storage != "" {
		st, err := acme.FileStorage(a.Storage)
		if err != nil {
			return nil, err
		}
		local = st
	}
	if shared {
		// The directory keeps a copy, served while Consul is away.
		deps.Storage, deps.LocalCache = acme.NewConsulStorage(client, a.ConsulPrefix), local
	} else {
		deps.Storage = local
	}
	return acme.New(i.ctx, set, deps)
}

// commitACME puts the plan's managers in force and starts them; the ones
// they replace stop, and stay as their fallback. A listener that left
// keeps its manager until its slot has shut down (retireSlot). Called
// under i.mu; nothing here waits.
func (i *Instance) commitACME(p *Plan) {
	for _, ap := range p.acme {
		ref := p.next[ap.addr].acme
		old := ref.m.Swap(ap.m)
		ref.key = ap.key
		ap.m.Start()
		if old != nil {
			old.Stop()
		}
		ref.prev.Store(old)
	}
	var http01 []*acme.Manager
	for _, s := range p.next {
		if s.acme == nil {
			continue
		}
		if m := s.acme.m.Load(); m != nil && m.HTTP01() {
			http01 = append(http01, m)
		}
	}
	i.acmeHTTP.Store(&http01)
}

// discardACME stops the managers of a plan that will not be committed.
func discardACME(p *Plan) {
	for _, ap := range p.acme {
		ap.m.Stop()
	}
}

// acmeStopWait bounds how long a drain waits for the managers' caches to
// stop (each storage call is bounded too).
const acmeStopWait = 5 * time.Second

// stopACME stops the managers of slots and waits, within acmeStopWait,
// for them to end; the instance is draining.
func stopACME(slots map[string]*slot) {
	var stopped []*acme.Manager
	for _, s := range slots {
		if s.acme != nil {
			if m := s.acme.m.Load(); m != nil {
				stopped = append(stopped, m)
			}
			s.acme.stop()
		}
	}
	deadline := time.After(acmeStopWait)
	for _, m := range stopped {
		select {
		case <-m.Done():
		case <-deadline:
			return
		}
	}
}

// acmeChallenges answers the HTTP-01 challenges of the managers in force
// on a plain listener, before its routes or its redirect.
func (i *Instance) acmeChallenges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if acme.LooksLikeHTTPChallenge(r) {
			if ms := i.acmeHTTP.Load(); ms != nil {
				for _, m := range *ms {
					if m.HandleHTTPChallenge(w, r) {
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// acmeStatus is what /status shows of a listener's managed names.
func acmeStatus(m *acme.Manager) []ACMEName {
	if m == nil {
		return nil
	}
	expiry := m.Expiry()
	out := make([]ACMEName, 0, len(m.Names()))
	for _, n := range m.Names() {
		a := ACMEName{Name: n}
		if at, ok := expiry[n]; ok {
			a.NotAfter = &at
		}
		out = append(out, a)
	}
	return out
}
