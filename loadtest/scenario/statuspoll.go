package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// StatusInterval is how often the runner polls azimuth's /status during
// the load: detection times are measured to this resolution.
const StatusInterval = 50 * time.Millisecond

// maxStatusSamples bounds what a poller keeps (over 16 minutes at
// StatusInterval); a longer load keeps polling but stores no more.
const maxStatusSamples = 20000

// PerTry is a pool's per-try timeout as azimuth's /status reports it:
// mode "auto" (learned from latency), "fixed" or "off", and the value in
// force in seconds.
type PerTry struct {
	Mode    string  `json:"mode"`
	Seconds float64 `json:"seconds"`
}

// statusSample is one answer of /status, reduced to the pool under test.
type statusSample struct {
	at       time.Time // when the answer arrived: its state held by then
	backends map[string]backendSample
	perTry   *PerTry // nil when /status does not report it
}

type backendSample struct {
	zone, state string
	available   bool
}

// statusDoc is the part of /status the runner reads. Fields it does not
// know are ignored, and per_try may be absent (older azimuth builds).
type statusDoc struct {
	Pools []struct {
		Name     string  `json:"name"`
		PerTry   *PerTry `json:"per_try"`
		Backends []struct {
			Address   string `json:"address"`
			Zone      string `json:"zone"`
			State     string `json:"state"`
			Available *bool  `json:"available"`
		} `json:"backends"`
	} `json:"pools"`
}

// statusPoller polls /status of one pool until its context ends.
type statusPoller struct {
	url, pool string
	client    *http.Client

	mu      sync.Mutex
	samples []statusSample
	errors  int
	lastErr string
}

func newStatusPoller(admin, pool string) *statusPoller {
	return &statusPoller{url: "http://" + admin + "/status", pool: pool, client: &http.Client{Timeout: time.Second}}
}

// run polls every StatusInterval until ctx ends. Polls never overlap: a
// slow answer delays the next, it does not pile requests up.
func (p *statusPoller) run(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			p.fail(fmt.Errorf("status poller stopped: %v", r))
		}
	}()
	t := time.NewTicker(StatusInterval)
	defer t.Stop()
	defer p.client.CloseIdleConnections()
	for {
		p.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *statusPoller) poll(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		p.fail(err)
		return
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			p.fail(fmt.Errorf("polling %s: %w", p.url, err))
		}
		return
	}
	defer resp.Body.Close()
	var doc statusDoc
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		p.fail(fmt.Errorf("polling %s: status %d", p.url, resp.StatusCode))
		return
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		p.fail(fmt.Errorf("decoding %s: %w", p.url, err))
		return
	}
	s := statusSample{at: time.Now(), backends: map[string]backendSample{}}
	for _, pl := range doc.Pools {
		if pl.Name != p.pool {
			continue
		}
		s.perTry = pl.PerTry
		for _, b := range pl.Backends {
			avail := b.State == "up"
			if b.Available != nil {
				avail = *b.Available
			}
			s.backends[b.Address] = backendSample{zone: b.Zone, state: b.State, available: avail}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) < maxStatusSamples {
		p.samples = append(p.samples, s)
	}
}

func (p *statusPoller) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors++
	p.lastErr = err.Error()
}

// result returns the samples in time order and the failed polls.
func (p *statusPoller) result() (samples []statusSample, errors int, lastErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.samples, p.errors, p.lastErr
}
