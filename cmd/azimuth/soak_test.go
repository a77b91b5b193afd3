package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// soakDefault is the soak's length in CI; AZIMUTH_SOAK sets another (a Go
// duration such as 10m) for a local run.
const soakDefault = 60 * time.Second

// Soak parameters. The load is steady and bounded: soakWorkers keep-alive
// HTTP/1.1 clients, each sending at most one request every soakPace (so at
// most 400 requests a second), every soakPostEvery-th one a POST with a body
// so the replay buffer is in the loop too.
const (
	soakWorkers   = 4
	soakPace      = 10 * time.Millisecond
	soakPostEvery = 10
	soakReload    = 2 * time.Second
)

// Flatness thresholds, checked on the samples after the warm-up, split in
// thirds: the last third's maximum against the first third's maximum. In a
// 60 s run the thirds' samples are about 34 s (17 reloads, 13,000
// requests) apart; in 10 minutes, 6 minutes.
//
//   - Goroutines: each client connection holds two goroutines in the proxy
//     and each backend connection two more; the loop's connection count is
//     fixed, but which backends hold idle connections moves with every
//     reload, and a health probe or a dial can be under way at a sample.
//     Over 10 minutes single scrapes read 23 to 43. soakGoroutineSlack
//     covers that and no more: a leak of one goroutine per reload puts the
//     last third about 17 above the first in a 60 s run.
//   - Open files: one descriptor per connection; single scrapes read 21 to
//     28 over 10 minutes; the same slack.
//   - RSS: the Go heap grows to twice the live heap before a collection
//     and the runtime returns freed pages to the kernel lazily, so RSS
//     moves by a few MiB with no leak at all (19.4 to 23.0 MiB over 10
//     minutes). The slack is soakRSSShare of the first third's maximum, at
//     least soakRSSMinSlack: about 4.5 MiB. A leak of 1 KiB per request is
//     23 MiB a minute at this load and fails a 60 s run; 64 KiB per reload
//     fails a 10-minute one (at least 95 reloads between the thirds).
const (
	soakGoroutineSlack = 10
	soakFDSlack        = 10
	soakRSSMinSlack    = 4 << 20
	soakRSSShare       = 0.20
	soakScrapes        = 3
)

// soakSample is one scrape of the process's own metrics.
type soakSample struct {
	at                time.Duration
	rss               float64
	goroutines, fds   float64
	served, reloadsOK int64
}

// soakDuration reads AZIMUTH_SOAK.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("AZIMUTH_SOAK")
	if v == "" {
		return soakDefault
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 30*time.Second {
		t.Fatalf("AZIMUTH_SOAK=%q: want a duration of at least 30s (e.g. 10m)", v)
	}
	return d
}

// soakConfig is one of the two configs the soak alternates between. They
// differ in the backend set of every zone and in the connect timeout, so
// each reload changes the pool's set (new backends wait in Pending for a
// health check, removed ones are forgotten) and replaces the pool's
// transport (the old one is closed once its requests end).
func soakConfig(variant int, bs []*reloadBackend) string {
	pick := [][]int{{0, 1, 3, 5}, {0, 2, 4, 5, 6}}[variant]
	var b strings.Builder
	fmt.Fprintf(&b, `zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
shutdown: { drain_delay: 50ms, grace: 5s }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
pools:
  - name: web
    timeouts: { connect: %ds, per_try: 5s, request: 10s }
    health:
      active: { path: /healthz, interval: 500ms, timeout: 400ms, rise: 1, fall: 3 }
    backends:
`, 1+variant)
	for _, i := range pick {
		fmt.Fprintf(&b, "      - { address: %s, zone: %s }\n", bs[i].addr, reloadZoneOf(bs[i].addr))
	}
	return b.String()
}

// soakSampleNow scrapes the process's RSS, goroutines and open files. Each
// is the least of soakScrapes scrapes in a row: a leaked goroutine or file
// is there at every scrape, while a request, a health probe or a dial in
// flight at one scrape has mostly ended by the next.
func soakSampleNow(t *testing.T, admin string, start time.Time, tr *reloadTraffic) soakSample {
	t.Helper()
	s := soakSample{at: time.Since(start).Round(time.Second), rss: math.Inf(1), goroutines: math.Inf(1), fds: math.Inf(1)}
	for range soakScrapes {
		s.rss = min(s.rss, reloadMetric(t, admin, "process_resident_memory_bytes"))
		s.goroutines = min(s.goroutines, reloadMetric(t, admin, "go_goroutines"))
		s.fds = min(s.fds, reloadMetric(t, admin, "process_open_fds"))
	}
	s.served = tr.ok.Load()
	s.reloadsOK = int64(reloadMetric(t, admin, reloadOK))
	return s
}

// soakStartLoad runs the paced workers until ctx ends or their request
// budget is spent. It returns a reloadTraffic, whose counters and check
// the reload tests share.
func soakStartLoad(ctx context.Context, t *testing.T, url string, budget int64) *reloadTraffic {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	tr := &reloadTraffic{cancel: cancel, served: map[string]int64{}}
	tp := &http.Transport{MaxIdleConnsPerHost: soakWorkers, MaxConnsPerHost: soakWorkers}
	t.Cleanup(tp.CloseIdleConnections)
	client := &http.Client{Transport: tp, Timeout: 10 * time.Second}
	per := budget / soakWorkers
	for range soakWorkers {
		tr.wg.Go(func() {
			tick := time.NewTicker(soakPace)
			defer tick.Stop()
			for n := int64(0); n < per; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if n%soakPostEvery == 0 {
					soakPost(tr, client, url)
				} else {
					tr.once(client, url)
				}
			}
		})
	}
	t.Cleanup(tr.stop)
	return tr
}

// soakPost sends a POST with a small body, which the proxy buffers for a
// possible replay; it must get 200.
func soakPost(tr *reloadTraffic, client *http.Client, url string) {
	const body = "soak body: the proxy buffers this for a possible replay"
	resp, err := client.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		tr.fail("POST: " + err.Error())
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		tr.fail(fmt.Sprintf("POST: status %d, body error %v", resp.StatusCode, err))
		return
	}
	tr.ok.Add(1)
}

// soakCheckFlat compares the last third of the samples after warm-up with
// the first third, for one series.
func soakCheckFlat(t *testing.T, what string, samples []soakSample, get func(soakSample) float64, slack func(float64) float64) {
	t.Helper()
	third := len(samples) / 3
	first, last := 0.0, 0.0
	for _, s := range samples[:third] {
		first = max(first, get(s))
	}
	for _, s := range samples[len(samples)-third:] {
		last = max(last, get(s))
	}
	limit := first + slack(first)
	t.Logf("%s: first third max %.1f, last third max %.1f, limit %.1f", what, first, last, limit)
	if last > limit {
		t.Errorf("%s grew: last third max %.1f > %.1f (first third max %.1f plus slack)", what, last, limit, first)
	}
}

// TestSoak runs the real binary under steady load for AZIMUTH_SOAK (60s by
// default) while the config alternates between two backend sets every
// soakReload. No request may fail, every reload must succeed, and the
// process's goroutines, open files and RSS must stay flat.
func TestSoak(t *testing.T) {
	d := soakDuration(t)
	var bs []*reloadBackend
	for _, ip := range []string{"127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.2.1", "127.0.2.2", "127.0.3.1", "127.0.3.2"} {
		bs = append(bs, reloadStartBackend(t, ip, 0))
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "azimuth.yaml")
	reloadWrite(t, path, soakConfig(0, bs))
	p, admin := reloadStart(t, path)
	url := "http://" + reloadListenerAddr(t, admin, "web") + "/soak"

	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	rate := int64(time.Second / soakPace * soakWorkers)
	tr := soakStartLoad(ctx, t, url, rate*int64((d+time.Minute)/time.Second))

	// Samples are taken on a reload tick just before the write, when the
	// last reload is soakReload old, so they compare like with like.
	every := max(1, min(3, int(d/(20*soakReload))))
	warmup := min(d/6, 30*time.Second)
	start := time.Now()
	tick := time.NewTicker(soakReload)
	defer tick.Stop()
	var samples []soakSample
	reloads := 0
	t.Logf("soak %v: %d workers, one request each per %v, reload every %v, sample every %v, warm-up %v",
		d, soakWorkers, soakPace, soakReload, time.Duration(every)*soakReload, warmup)
	t.Logf("%8s %9s %10s %6s %10s %8s", "elapsed", "RSS MiB", "goroutines", "fds", "requests", "reloads")
	for end := start.Add(d); time.Now().Before(end); {
		<-tick.C // the experiment's pace, not a wait for an event
		if reloads%every == 0 {
			s := soakSampleNow(t, admin, start, tr)
			t.Logf("%8v %9.1f %10.0f %6.0f %10d %8d", s.at, s.rss/(1<<20), s.goroutines, s.fds, s.served, s.reloadsOK-1)
			if s.at >= warmup {
				samples = append(samples, s)
			}
		}
		reloads++
		// A rename, as deploy tools write files: the watcher never sees a
		// half-written config.
		tlsproxyWriteFile(t, dir, "azimuth.yaml", []byte(soakConfig(reloads%2, bs)))
		testwait.Until(t, 10*time.Second, fmt.Sprintf("reload %d applied", reloads), func() bool {
			return reloadMetric(t, admin, reloadOK) >= float64(1+reloads)
		})
	}
	tr.check(t, int64(d/time.Second)*rate/4)
	t.Logf("served by backend: %v", tr.served)
	if got := reloadMetric(t, admin, reloadFailed); got != 0 {
		t.Errorf("%v reloads failed", got)
	}
	if got := reloadMetric(t, admin, reloadOK) - 1; got != float64(reloads) {
		t.Errorf("%v reloads applied, want %d", got, reloads)
	}
	for _, be := range bs {
		// Health probes count too: every backend of either set is probed.
		if be.hits.Load() == 0 {
			t.Errorf("backend %s never got a request or a probe: the reloads did not change the set", be.addr)
		}
	}
	if len(samples) < 6 {
		t.Fatalf("only %d samples after warm-up", len(samples))
	}
	soakCheckFlat(t, "goroutines", samples, func(s soakSample) float64 { return s.goroutines }, func(float64) float64 { return soakGoroutineSlack })
	soakCheckFlat(t, "open files", samples, func(s soakSample) float64 { return s.fds }, func(float64) float64 { return soakFDSlack })
	soakCheckFlat(t, "RSS bytes", samples, func(s soakSample) float64 { return s.rss }, func(first float64) float64 {
		return max(first*soakRSSShare, soakRSSMinSlack)
	})
	select {
	case <-p.done:
		t.Fatal("azimuth exited during the soak")
	default:
	}
}
