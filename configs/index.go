package configs

import "strings"

// index remembers, for every key path met while decoding, the line it was
// written on and whether it had a value. Validation uses it to put a line on
// every problem, and applyDefaults to tell an absent key from a zero one.
type index struct {
	lines map[string]int
	set   map[string]bool
}

func newIndex() *index {
	return &index{lines: map[string]int{}, set: map[string]bool{}}
}

// line returns the line of path, or of its nearest written ancestor when
// path itself is absent (a missing key is reported where its block is).
func (ix *index) line(path string) int {
	if ix == nil {
		return 0
	}
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := ix.lines[p]; ok {
			return l
		}
	}
	return 0
}

// has reports whether path was written with a non-null value.
func (ix *index) has(path string) bool {
	return ix != nil && ix.set[path]
}

// parentPath drops the last ".key" or "[i]" of a path.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// join appends a key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
