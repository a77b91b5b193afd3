// Package cgroup reads the memory limit the kernel enforces on this
// process: the smallest memory limit of its cgroup and the cgroup's
// ancestors, under cgroup v2 (memory.max) or v1 (memory.limit_in_bytes),
// as a container runtime or a systemd unit's MemoryMax= sets it.
//
// It imports nothing of the project.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
)

// unlimitedV1 is the smallest memory.limit_in_bytes that cgroup v1 means
// as no limit: it writes the largest page-aligned int64 there, and no
// machine has memory near 2^60 bytes.
const unlimitedV1 = 1 << 60

// Limit is a memory limit found, with the file that set it.
type Limit struct {
	Bytes int64
	File  string // e.g. /sys/fs/cgroup/memory.max
}

// MemoryLimit reads the limit of the running process, from /proc and
// /sys/fs/cgroup. ok is false when no limit applies (none is set, or no
// cgroup memory controller is mounted).
func MemoryLimit() (Limit, bool, error) {
	return memoryLimit(os.DirFS("/"))
}

// memoryLimit reads the limit from fsys, a file system laid out as the
// root is (proc/self/cgroup, sys/fs/cgroup/...).
func memoryLimit(fsys fs.FS) (Limit, bool, error) {
	data, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return Limit{}, false, nil // not Linux, or no /proc
	}
	if err != nil {
		return Limit{}, false, err
	}
	var best Limit
	found := false
	consider := func(l Limit, ok bool) {
		if ok && (!found || l.Bytes < best.Bytes) {
			best, found = l, true
		}
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		id, rest, _ := strings.Cut(sc.Text(), ":")
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			// The v2 hierarchy: mounted at sys/fs/cgroup, or beside the
			// v1 controllers at sys/fs/cgroup/unified.
			for _, mount := range []string{"sys/fs/cgroup", "sys/fs/cgroup/unified"} {
				if _, err := fs.Stat(fsys, mount+"/cgroup.controllers"); err == nil {
					l, ok, err := smallest(fsys, mount, p, "memory.max", math.MaxInt64)
					if err != nil {
						return Limit{}, false, err
					}
					consider(l, ok)
					break
				}
			}
		case hasController(controllers, "memory"):
			l, ok, err := smallest(fsys, "sys/fs/cgroup/memory", p, "memory.limit_in_bytes", unlimitedV1)
			if err != nil {
				return Limit{}, false, err
			}
			consider(l, ok)
		}
	}
	return best, found, sc.Err()
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// smallest walks from mount/p up to mount and returns the smallest limit
// that file sets on the way. A directory that is not there is skipped:
// inside a container's cgroup namespace the path in proc/self/cgroup can
// name the host's hierarchy while the mount shows the container's own, and
// the mount's root file is then the container's limit. Values of unlimited
// or more, and "max", are no limit.
func smallest(fsys fs.FS, mount, p, file string, unlimited int64) (Limit, bool, error) {
	var best Limit
	found := false
	dir := path.Join(mount, path.Clean("/"+p))
	for {
		name := path.Join(dir, file)
		data, err := fs.ReadFile(fsys, name)
		switch {
		case err == nil:
			v := strings.TrimSpace(string(data))
			if v != "max" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return Limit{}, false, fmt.Errorf("/%s: %q is not a number of bytes", name, v)
				}
				if n > 0 && n < unlimited && (!found || n < best.Bytes) {
					best, found = Limit{Bytes: n, File: "/" + name}, true
				}
			}
		case !errors.Is(err, fs.ErrNotExist):
			return Limit{}, false, err
		}
		if dir == mount {
			return best, found, nil
		}
		dir = path.Dir(dir)
	}
}
