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
// requests/s over real loopback backends: per-try timeouts feed Observe, and
// a backend that starts hanging is ejected after ConsecutiveFailures
// attempts and gets no more. It asserts counts, not time (a shared CI
// machine under -race cannot hold a rate); the time it took is logged.
func TestPassivePathUnderLoad(t *testing.T) {
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
	f := newFixture(t, balancer.Options{LocalZone: "a"}, sp)
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
	)
	attempt := func() {
		b, err := f.pool.Pick(context.Background(), nil)
		if err != nil {
			t.Errorf("pick: %v", err)
			return
		}
		defer b.Release()
		if b == hung {
			mu.Lock()
			lastSent = time.Now()
			if !hungAt.IsZero() {
				afterHang++
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

	if hung.State() != balancer.StateEjected {
		t.Fatalf("hung backend is %v, want ejected", hung.State())
	}
	for _, s := range srvs[1:] {
		if b := f.backend(t, s.Addr()); b.State() != balancer.StateUp {
			t.Errorf("healthy backend %s is %v", s.Addr(), b.State())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("hung backend: %d attempts after the hang, the last %v after it began",
		afterHang, lastSent.Sub(hungAt))
	// A request picked before the hang may still answer; after it, every
	// attempt fails, and ejection needs cf of them in a row. Attempts
	// already in flight when the cf-th fails add at most a few more.
	if afterHang < cf || afterHang > 2*cf {
		t.Errorf("hung backend got %d attempts after the hang, want %d to %d", afterHang, cf, 2*cf)
	}
	if info, _ := f.t.Info(hungSrv.Addr()); info.Ejections != 1 {
		t.Errorf("hung backend ejected %d times, want once", info.Ejections)
	}
}
