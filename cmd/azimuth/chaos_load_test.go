package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// chaosKind is one kind of request the loop sends.
type chaosKind int

const (
	// chaosGET is idempotent by its method.
	chaosGET chaosKind = iota
	// chaosKeyed is a POST carrying the pool's idempotency header, so the
	// proxy may replay it.
	chaosKeyed
	// chaosPOST is a POST without a key: never to be delivered twice.
	chaosPOST
	chaosKinds
)

var chaosKindNames = [chaosKinds]string{"GET", "POST with key", "POST without key"}

func (k chaosKind) String() string { return chaosKindNames[k] }

// idempotent reports whether the proxy may send the request twice.
func (k chaosKind) idempotent() bool { return k != chaosPOST }

// chaosWorkersPerKind is how many workers of each kind run per client.
const chaosWorkersPerKind = 2

// chaosPace is the least time between two requests of one worker: enough
// load to meet every fault many times, little enough to share two cores.
const chaosPace = 4 * time.Millisecond

// chaosOutcome is what the client saw of one request.
type chaosOutcome struct {
	kind    chaosKind
	id      string // X-Request-Id, or Idempotency-Key for chaosKeyed
	started time.Time
	status  int    // 0 when no response came
	backend string // X-Backend: the fleet backend that answered
	err     string // transport error, or the body's read error
	whole   bool   // the body read to its end is what the backend sends
}

// class sorts an outcome: "ok"; "failed" (no response, or not 2xx);
// "aborted" (a 2xx whose body broke off: the client knows it is
// incomplete); "short" (a 2xx read to its end whose body is not the
// backend's: a cut body passed off as whole, which must never happen).
func (o chaosOutcome) class() string {
	switch {
	case o.status < 200 || o.status > 299:
		return "failed"
	case o.err != "":
		return "aborted"
	case !o.whole:
		return "short"
	}
	return "ok"
}

func (o chaosOutcome) String() string {
	return fmt.Sprintf("%s %s at %s: %s, status %d from %q %s", o.kind, o.id, o.started.Format("15:04:05.000"), o.class(), o.status, o.backend, o.err)
}

// chaosLoad is the client loop: workers of every kind on every client,
// each sending one request at a time until stopped.
type chaosLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64

	mu       sync.Mutex
	outcomes []chaosOutcome
}

// chaosSeq numbers the requests of every loop, so no two share an id.
var chaosSeq atomic.Int64

// chaosStartLoad starts the loop against base. It is bounded: it ends
// after 30s or 60,000 requests even if never stopped.
func chaosStartLoad(t *testing.T, clients []*http.Client, base string) *chaosLoad {
	return chaosStartLoadFor(t, clients, base, 30*time.Second)
}

// chaosStartLoadFor is chaosStartLoad for a case that needs the loop for
// longer: it ends after d, or 2,000 requests a second of d.
func chaosStartLoadFor(t *testing.T, clients []*http.Client, base string, d time.Duration) *chaosLoad {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	l := &chaosLoad{cancel: cancel}
	var budget atomic.Int64
	budget.Store(int64(2_000 * d / time.Second))
	for _, c := range clients {
		for k := range chaosKinds {
			for range chaosWorkersPerKind {
				l.wg.Go(func() {
					tick := time.NewTicker(chaosPace)
					defer tick.Stop()
					for ctx.Err() == nil && budget.Add(-1) >= 0 {
						l.record(chaosDo(c, base, k, chaosSeq.Add(1)))
						select {
						case <-ctx.Done():
						case <-tick.C:
						}
					}
				})
			}
		}
	}
	t.Cleanup(l.stop)
	return l
}

// chaosDo sends one request of kind and reads the whole answer. It does
// not take the loop's context: stopping the loop lets requests in flight
// finish, so a stop is never counted as a failure.
func chaosDo(c *http.Client, base string, kind chaosKind, n int64) chaosOutcome {
	o := chaosOutcome{kind: kind, id: fmt.Sprintf("chaos-%d-%d", kind, n), started: time.Now()}
	method, body := http.MethodGet, io.Reader(nil)
	if kind != chaosGET {
		method, body = http.MethodPost, strings.NewReader("payload of "+o.id)
	}
	req, err := http.NewRequest(method, base+"/chaos?id="+o.id, body)
	if err != nil {
		o.err = err.Error()
		return o
	}
	// The fleet counts each value of either header: one header per
	// request, so one delivery counts once.
	if kind == chaosKeyed {
		req.Header.Set("Idempotency-Key", o.id)
	} else {
		req.Header.Set("X-Request-Id", o.id)
	}
	resp, err := c.Do(req)
	if err != nil {
		o.err = err.Error()
		return o
	}
	defer resp.Body.Close()
	o.status, o.backend = resp.StatusCode, resp.Header.Get("X-Backend")
	got, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		o.err = "reading body: " + err.Error()
		return o
	}
	o.whole = string(got) == "ok "+o.backend+"\n"
	return o
}

func (l *chaosLoad) record(o chaosOutcome) {
	if o.class() == "ok" {
		l.ok.Add(1)
	}
	l.mu.Lock()
	l.outcomes = append(l.outcomes, o)
	l.mu.Unlock()
}

// stop ends the loop and waits for the requests in flight.
func (l *chaosLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitOK polls until n more requests succeeded than before the call.
func (l *chaosLoad) waitOK(t *testing.T, what string, n int64) {
	t.Helper()
	want := l.ok.Load() + n
	testwait.Until(t, 10*time.Second, what, func() bool { return l.ok.Load() >= want })
}

// results returns the outcomes recorded so far.
func (l *chaosLoad) results() []chaosOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]chaosOutcome(nil), l.outcomes...)
}
