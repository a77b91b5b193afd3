package main

import (
	"math"
	"testing"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/internal/cgroup"
)

// The runtime settings come from the most explicit source: the config's
// runtime keys, then GOMEMLIMIT and GOGC, then the cgroup's limit (80%
// of it) with the pace of a limited heap; with none of them, Go's own.
func TestSettleRuntime(t *testing.T) {
	const mib = 1 << 20
	none := int64(math.MaxInt64)
	unit := cgroup.Limit{Bytes: 500 * mib, File: "/sys/fs/cgroup/memory.max"}
	for _, tc := range []struct {
		name                string
		r                   configs.Runtime
		envLimit            int64
		limitSet            bool
		envPace             int
		gogcSet, cgSet      bool
		limit               int64
		pace                int
		limitFrom, paceFrom string
	}{
		{name: "nothing anywhere", envLimit: none, envPace: 100,
			limit: none, pace: 100, limitFrom: "none", paceFrom: "Go's default"},
		{name: "a cgroup limit: 80% of it, and the limited pace", envLimit: none, envPace: 100, cgSet: true,
			limit: 400 * mib, pace: 400, limitFrom: "80% of /sys/fs/cgroup/memory.max", paceFrom: "under a memory limit"},
		{name: "GOGC set: the pace is the environment's", envLimit: none, envPace: 150, gogcSet: true, cgSet: true,
			limit: 400 * mib, pace: 150, limitFrom: "80% of /sys/fs/cgroup/memory.max", paceFrom: "GOGC"},
		{name: "GOGC=100 set explicitly is kept", envLimit: none, envPace: 100, gogcSet: true, cgSet: true,
			limit: 400 * mib, pace: 100, limitFrom: "80% of /sys/fs/cgroup/memory.max", paceFrom: "GOGC"},
		{name: "GOMEMLIMIT wins over the cgroup", envLimit: 96 * mib, limitSet: true, envPace: 100, cgSet: true,
			limit: 96 * mib, pace: 400, limitFrom: "GOMEMLIMIT", paceFrom: "under a memory limit"},
		{name: "GOMEMLIMIT=off: no limit, whatever the cgroup", envLimit: none, limitSet: true, envPace: 100, cgSet: true,
			limit: none, pace: 100, limitFrom: "GOMEMLIMIT", paceFrom: "Go's default"},
		{name: "the config wins over both", r: configs.Runtime{MemoryLimit: 52 * mib, GCPercent: 200}, envLimit: 96 * mib, limitSet: true, envPace: 150, gogcSet: true, cgSet: true,
			limit: 52 * mib, pace: 200, limitFrom: "runtime.memory_limit", paceFrom: "runtime.gc_percent"},
		{name: "gc_percent off under the cgroup's limit", r: configs.Runtime{GCPercent: configs.GCOff}, envLimit: none, envPace: 100, cgSet: true,
			limit: 400 * mib, pace: -1, limitFrom: "80% of /sys/fs/cgroup/memory.max", paceFrom: "runtime.gc_percent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cg cgroup.Limit
			if tc.cgSet {
				cg = unit
			}
			s := settleRuntime(tc.r, tc.envLimit, tc.limitSet, tc.envPace, tc.gogcSet, cg, tc.cgSet)
			want := runtimeSettings{limit: tc.limit, pace: tc.pace, limitSource: tc.limitFrom, paceSource: tc.paceFrom}
			if s != want {
				t.Errorf("got %+v, want %+v", s, want)
			}
		})
	}
}
