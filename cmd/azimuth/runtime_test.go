package main

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/cgroup"
)

// The runtime section sets the collector's limit and pace at start and on
// every reload; a config without it goes back to GOMEMLIMIT and GOGC from
// the environment, and a rejected one changes neither. What the runtime
// holds is read back from the process's own /metrics (the Go collector's
// go_gc_gomemlimit_bytes and go_gc_gogc_percent, where off reads as the
// largest uint64, as runtime/metrics reports it).
func TestRuntimeSettingsFollowReloads(t *testing.T) {
	dir := t.TempDir()
	path := writeRunConfig(t, dir)
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(runtime string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(runtime+string(base)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const envLimit, envPace = 96 << 20, 150
	write("runtime: { memory_limit: 48MiB, gc_percent: off }\n")
	p := start(t, path, "GOMEMLIMIT=96MiB", "GOGC=150")
	admin := p.waitLog(t, "admin listening", nil)["address"].(string)

	// want polls /metrics until the runtime holds limit and pace, as a
	// reload applies a moment after the file changes.
	want := func(step string, limit, pace float64) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			l := reloadMetric(t, admin, "go_gc_gomemlimit_bytes")
			g := reloadMetric(t, admin, "go_gc_gogc_percent")
			if l == limit && g == pace {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: memory limit %v, gc percent %v; want %v and %v", step, l, g, limit, pace)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
	want("at start", 48<<20, math.MaxUint64)

	write("")
	want("runtime section removed", envLimit, envPace)

	write("runtime: { gc_percent: 400 }\n")
	want("gc_percent 400", envLimit, 400)

	write("runtime: { gc_percent: off }\n")
	rejected := p.waitLog(t, "config reload rejected", func(l map[string]any) bool {
		return l["key"] == "runtime.gc_percent"
	})
	if !strings.Contains(rejected["problem"].(string), "needs runtime.memory_limit") || rejected["line"] != float64(1) {
		t.Errorf("rejected reload logged as %v", rejected)
	}
	want("after the rejected edit", envLimit, 400)
}

// With no runtime keys and neither GOMEMLIMIT nor GOGC, the process takes
// its memory limit from its cgroup, as the test itself sees it (the same
// cgroup), and logs where each setting came from: 80% of the cgroup's
// limit and the pace of a limited heap when there is one, Go's own
// settings when there is none.
func TestRuntimeSettingsFromTheCgroup(t *testing.T) {
	cg, limited, err := cgroup.MemoryLimit()
	if err != nil {
		t.Fatalf("reading this process's cgroup: %v", err)
	}
	dir := t.TempDir()
	// An empty GOGC or GOMEMLIMIT is as good as none to the runtime, but
	// the process would take it as set; the child's environment has
	// neither at all.
	p := startWithout(t, writeRunConfig(t, dir), "GOGC", "GOMEMLIMIT")
	settings := p.waitLog(t, "runtime settings", nil)
	admin := p.waitLog(t, "admin listening", nil)["address"].(string)
	limit, pace := float64(math.MaxInt64), float64(100)
	limitFrom, paceFrom := "none", "Go's default"
	if limited {
		limit, pace = float64(int64(float64(cg.Bytes)*0.8)), 400
		limitFrom, paceFrom = "80% of "+cg.File, "under a memory limit"
	}
	t.Logf("cgroup limit %+v (set: %v); logged %v", cg, limited, settings)
	if settings["memory_limit_from"] != limitFrom || settings["gc_percent_from"] != paceFrom || settings["gc_percent"] != pace {
		t.Errorf("logged %v; want the limit from %q and the pace %v from %q", settings, limitFrom, pace, paceFrom)
	}
	if l, g := reloadMetric(t, admin, "go_gc_gomemlimit_bytes"), reloadMetric(t, admin, "go_gc_gogc_percent"); l != limit || g != pace {
		t.Errorf("the runtime holds a limit of %v and a pace of %v, want %v and %v", l, g, limit, pace)
	}
}
