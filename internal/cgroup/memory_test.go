package cgroup

import (
	"testing"
	"testing/fstest"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	v1Unlimited := "9223372036854771712\n"
	for _, tc := range []struct {
		name  string
		fs    fstest.MapFS
		want  int64 // 0: no limit
		file  string
		fails bool
	}{
		{name: "no /proc: not Linux", fs: fstest.MapFS{}},
		{name: "v2 container, namespaced: the root's memory.max", fs: fstest.MapFS{
			"proc/self/cgroup":                 file("0::/\n"),
			"sys/fs/cgroup/cgroup.controllers": file("cpu memory\n"),
			"sys/fs/cgroup/memory.max":         file("268435456\n"),
		}, want: 256 * mib, file: "/sys/fs/cgroup/memory.max"},
		{name: "v2 unlimited", fs: fstest.MapFS{
			"proc/self/cgroup":                 file("0::/\n"),
			"sys/fs/cgroup/cgroup.controllers": file("memory\n"),
			"sys/fs/cgroup/memory.max":         file("max\n"),
		}},
		{name: "v2 systemd unit: the smallest of the unit and its slice", fs: fstest.MapFS{
			"proc/self/cgroup":                                          file("0::/system.slice/azimuth.service\n"),
			"sys/fs/cgroup/cgroup.controllers":                          file("memory\n"),
			"sys/fs/cgroup/system.slice/memory.max":                     file("1073741824\n"),
			"sys/fs/cgroup/system.slice/azimuth.service/memory.max":     file("max\n"),
			"sys/fs/cgroup/system.slice/azimuth.service/memory.current": file("1\n"),
		}, want: 1024 * mib, file: "/sys/fs/cgroup/system.slice/memory.max"},
		{name: "v2 unit under a looser slice", fs: fstest.MapFS{
			"proc/self/cgroup":                                      file("0::/system.slice/azimuth.service\n"),
			"sys/fs/cgroup/cgroup.controllers":                      file("memory\n"),
			"sys/fs/cgroup/system.slice/memory.max":                 file("1073741824\n"),
			"sys/fs/cgroup/system.slice/azimuth.service/memory.max": file("536870912\n"),
		}, want: 512 * mib, file: "/sys/fs/cgroup/system.slice/azimuth.service/memory.max"},
		{name: "v1 container, path of the host's hierarchy", fs: fstest.MapFS{
			"proc/self/cgroup":                           file("4:memory:/docker/0123abcd\n3:cpuset:/\n0::/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("134217728\n"),
		}, want: 128 * mib, file: "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{name: "v1 unlimited, as on this kind of host", fs: fstest.MapFS{
			"proc/self/cgroup":                                            file("4:memory:/process_api/fd90\n0::/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                  file(v1Unlimited),
			"sys/fs/cgroup/memory/process_api/fd90/memory.limit_in_bytes": file(v1Unlimited),
		}},
		{name: "hybrid: v1 memory with a joint controller list and v2 beside it", fs: fstest.MapFS{
			"proc/self/cgroup": file("5:memory,hugetlb:/a\n0::/a\n"),
			"sys/fs/cgroup/memory/a/memory.limit_in_bytes": file("67108864\n"),
			"sys/fs/cgroup/unified/cgroup.controllers":     file(""),
		}, want: 64 * mib, file: "/sys/fs/cgroup/memory/a/memory.limit_in_bytes"},
		{name: "a limit that is not a number", fs: fstest.MapFS{
			"proc/self/cgroup":                 file("0::/\n"),
			"sys/fs/cgroup/cgroup.controllers": file("memory\n"),
			"sys/fs/cgroup/memory.max":         file("lots\n"),
		}, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, ok, err := memoryLimit(tc.fs)
			if tc.fails {
				if err == nil {
					t.Fatalf("got %+v, %v; want an error", l, ok)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tc.want > 0) || l.Bytes != tc.want || l.File != tc.file {
				t.Errorf("got %+v ok=%v, want %d from %q", l, ok, tc.want, tc.file)
			}
		})
	}
}

// On the machine the tests run on, the real files parse, whatever they
// say.
func TestMemoryLimitOfThisProcess(t *testing.T) {
	l, ok, err := MemoryLimit()
	if err != nil {
		t.Fatalf("reading this process's cgroup: %v", err)
	}
	t.Logf("limit %+v (set: %v)", l, ok)
	if ok && l.Bytes <= 0 {
		t.Errorf("a limit of %d bytes", l.Bytes)
	}
}
