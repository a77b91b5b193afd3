package health

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// TestPassivePathUnderLoad plays the proxy's attempt loop at up to 500
// requests/s over real loopback backends: per-try timeouts feed Observe.
// Without penalties, a backend that starts hanging is ejected after
// ConsecutiveFailures attempts and gets no more. With them (the default),
// its first timeout already keeps new attempts away, long before an
// ejection. It asserts counts, not time (a shared CI machine under -race
// cannot hold a rate); the time it took is logged.
func TestPassivePathUnderLoad(t *testing.T) {
	t.Run("ejection", func(t *testing.T) { passiveUnderLoad(t, 0) })
	t.Run("penalty", func(t *testing.T) { passiveUnderLoad(t, time.Second) })
}

func passiveUnderLoad(t *testing.T, halfLife time.Duration) {
	const (
		rate      = 500
		requests  = 400 // 800ms of load
		perTry    = 80 * time.Millisecond
		hangAfter = 200 * time.Millisecond
		cf        = 5
	)
	var srvs []*scripted
	var sp []balancer.Spec
	for _, ip := range []string{"127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4"} {
		s := newScripted(t, ip, ok())
		srvs = append(srvs, s)
		sp = append(sp, balancer.Spec{Address: s.Addr(), Zone: "a"})
	}
	f := newFixture(t, balancer.Options{LocalZone: "a", PenaltyHalfLife: halfLife}, sp)
	d, err := NewDetector(f.t, passive(cf, 30*time.Second, 50))
	if err != nil {
		t.Fatal(err)
	}
	runOwned(t, d.Run)
	hungSrv := srvs[0]
	hung := f.backend(t, hungSrv.Addr())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	var (
		mu        sync.Mutex
		lastSent  time.Time // last first attempt sent to the hung backend
		hungAt    time.Time
		afterHang int // first attempts sent to it after it started hanging
		failedAt  time.Time
		afterFail int // first attempts sent to it after its first failure
	)
	attempt := func() {
		lease, err := f.pool.Pick(context.Background(), nil)
		b := lease.Backend()
		if err != nil {
			t.Errorf("pick: %v", err)
			return
		}
		defer lease.Release()
		if b == hung {
			mu.Lock()
			lastSent = time.Now()
			if !hungAt.IsZero() {
				afterHang++
			}
			if !failedAt.IsZero() {
				afterFail++
			}
			mu.Unlock()
		}
		ctx, cancel := context.WithTimeout(context.Background(), perTry)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.Address()+"/", nil)
		resp, err := client.Do(req)
		failed := err != nil
		if err == nil {
			failed = resp.StatusCode >= 500
			resp.Body.Close()
		}
		if failed && b == hung {
			mu.Lock()
			if failedAt.IsZero() {
				failedAt = time.Now()
			}
			mu.Unlock()
		}
		d.Observe(b, failed)
	}

	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	start := time.Now()
	for i := range requests {
		<-tick.C
		if i == int(hangAfter*rate/time.Second) {
			hungSrv.set(hang())
			mu.Lock()
			hungAt = time.Now()
			mu.Unlock()
		}
		wg.Add(1)
		go func() { defer wg.Done(); attempt() }()
	}
	wg.Wait()
	t.Logf("%d requests in %v", requests, time.Since(start))

	for _, s := range srvs[1:] {
		if b := f.backend(t, s.Addr()); b.State() != balancer.StateUp {
			t.Errorf("healthy backend %s is %v", s.Addr(), b.State())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("hung backend: %d attempts after the hang, the last %v after it began; %d after its first failure",
		afterHang, lastSent.Sub(hungAt), afterFail)
	if halfLife > 0 {
		// The first failure costs 2 connections, the next ones 4, 8, ...:
		// a sibling would need that many requests in flight at once, all
		// three of them, for the hung backend to be picked again. On a
		// loaded CI machine a few may still tie; without the penalty it
		// gets cf-1 or more.
		if afterFail > 2 {
			t.Errorf("hung backend got %d attempts after its first failure, want at most 2", afterFail)
		}
		if failedAt.IsZero() {
			t.Error("the hung backend never failed an attempt")
		}
		return
	}
	if hung.State() != balancer.StateEjected {
		t.Fatalf("hung backend is %v, want ejected", hung.State())
	}
	// Ejection needs cf failures in a row. A request picked just before
	// the hang may answer, or may arrive after it and fail too (on a
	// loaded machine, one or two do), so the attempts counted after the
	// hang are at least cf-2. Attempts already in flight when the cf-th
	// fails add at most a few more.
	if afterHang < cf-2 || afterHang > 2*cf {
		t.Errorf("hung backend got %d attempts after the hang, want %d to %d", afterHang, cf-2, 2*cf)
	}
	if info, _ := f.t.Info(hungSrv.Addr()); info.Ejections != 1 {
		t.Errorf("hung backend ejected %d times, want once", info.Ejections)
	}
}
