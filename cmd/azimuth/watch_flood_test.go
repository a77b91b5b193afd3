package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// TestWatchAppliesEditsBesideBusyAccessLog runs azimuth as many do,
// `azimuth -config ./azimuth.yaml` with the access log a file in the same
// directory, under client load: the log is written on every request, so
// the directory the config watcher watches never goes quiet. Every edit is
// applied within seconds all the same, and a broken one is logged and
// reported on /metrics while the running config keeps serving.
func TestWatchAppliesEditsBesideBusyAccessLog(t *testing.T) {
	setA, setB := reloadSets(t)
	dir, path := reloadDir(t)
	logPath := filepath.Join(dir, "azimuth.log")
	// config is the reload tests' config with the access log in dir (a
	// relative output is read against the config's directory) and, if
	// weight is not 0, that weight on setA[0].
	config := func(backends []*reloadBackend, weight int) string {
		y := reloadConfig{listen: "127.0.0.1:0", backends: backends}.yaml()
		y = strings.Replace(y, `access_log: { output: "off" }`, `access_log: { output: azimuth.log }`, 1)
		if weight != 0 {
			be := fmt.Sprintf("{ address: %s, zone: %s", setA[0].addr, reloadZoneOf(setA[0].addr))
			y = strings.Replace(y, be+" }", fmt.Sprintf("%s, weight: %d }", be, weight), 1)
		}
		return y
	}
	reloadWrite(t, path, config(setA, 0))
	p, admin := reloadStart(t, path)
	url := "http://" + reloadListenerAddr(t, admin, "web") + "/"
	const workers = 8
	tr := reloadStartTraffic(t, reloadClient(t, workers), url, workers)
	logSize := func() int64 {
		fi, err := os.Stat(logPath)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	testwait.Until(t, 10*time.Second, "the access log beside the config to fill", func() bool { return logSize() > 64<<10 })
	floodStart, okAtStart := time.Now(), tr.ok.Load()

	weightOf := func(st instance.Status, addr string) int {
		for _, pl := range st.Pools {
			for _, b := range pl.Backends {
				if pl.Name == "web" && b.Address == addr {
					return b.Weight
				}
			}
		}
		return 0
	}
	// applied waits for an edit to show, up to applyWithin, and says how
	// long it took; the access log must have grown meanwhile, or the
	// edit was not made beside a busy log.
	const applyWithin = 5 * time.Second
	applied := func(what string, cond func(instance.Status) bool) time.Duration {
		t.Helper()
		start, size := time.Now(), logSize()
		testwait.Until(t, applyWithin, what, func() bool { return cond(reloadGetStatus(t, admin)) })
		took := time.Since(start)
		if logSize() == size {
			t.Fatalf("%s: the access log did not grow meanwhile, so the test proves nothing", what)
		}
		return took
	}
	backendsAre := func(want ...*reloadBackend) func(instance.Status) bool {
		return func(st instance.Status) bool {
			return slices.Equal(reloadPoolBackends(st, "web"), reloadAddrs(want...))
		}
	}

	var took []time.Duration
	withB := append(slices.Clone(setA), setB[0])
	reloadWrite(t, path, config(withB, 0))
	took = append(took, applied("an added backend in /status", backendsAre(withB...)))

	reloadWrite(t, path, config(withB, 5))
	took = append(took, applied("a changed weight in /status", func(st instance.Status) bool { return weightOf(st, setA[0].addr) == 5 }))

	reloadWrite(t, path, config(setA, 0))
	took = append(took, applied("the added backend removed and the weight back", func(st instance.Status) bool {
		return backendsAre(setA...)(st) && weightOf(st, setA[0].addr) == 1
	}))
	if got := reloadMetric(t, admin, reloadOK); got != 4 {
		t.Errorf("%s = %v, want 4 (start and three edits)", reloadOK, got)
	}

	// A broken edit: an unknown key is rejected, logged with its place,
	// and /metrics says the last reload failed; the pool stays as it was.
	broken := strings.Replace(config(setB, 0), "      - { address:", "      - { adress:", 1)
	reloadWrite(t, path, broken)
	start, size := time.Now(), logSize()
	testwait.Until(t, applyWithin, "the broken edit counted as a failed reload", func() bool {
		return reloadMetric(t, admin, reloadFailed) == 1
	})
	took = append(took, time.Since(start))
	if logSize() == size {
		t.Fatal("the broken edit: the access log did not grow meanwhile, so the test proves nothing")
	}
	if v := reloadMetric(t, admin, reloadLastOK); v != 0 {
		t.Errorf("%s = %v after a broken edit, want 0", reloadLastOK, v)
	}
	p.waitLog(t, "config reload rejected", func(l map[string]any) bool {
		return l["key"] == "pools[0].backends[0].adress" && l["file"] == path
	})
	if got, want := reloadPoolBackends(reloadGetStatus(t, admin), "web"), reloadAddrs(setA...); !slices.Equal(got, want) {
		t.Errorf("pool backends %v after a broken edit, want the running %v", got, want)
	}

	// The fix is applied as quickly, and the metric says so.
	reloadWrite(t, path, config(setB, 0))
	took = append(took, applied("the fixed file's backends in /status", backendsAre(setB...)))
	testwait.Until(t, applyWithin, reloadLastOK+" back to 1", func() bool { return reloadMetric(t, admin, reloadLastOK) == 1 })

	rate := float64(tr.ok.Load()-okAtStart) / time.Since(floodStart).Seconds()
	tr.check(t, 1000)
	for i := range took {
		took[i] = took[i].Round(time.Millisecond)
	}
	t.Logf("access log beside the config at %.0f lines/s (%d KiB): edits applied after %v", rate, logSize()>>10, took)
}
