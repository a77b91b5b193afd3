package configs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxLinks bounds the symlinks followed on the way to the config, as the
// kernel's ELOOP does (40 on Linux), so a loop of links ends.
const maxLinks = 40

// dirWatcher is what watchSet needs of fsnotify.Watcher.
type dirWatcher interface {
	Add(name string) error
	Remove(name string) error
}

// watchSet is what a Watcher watches and which of the events there can
// change what the config path reads; every other event is dropped before
// it reaches the debounce, however often it comes.
//
// Names are real paths (no symlink in them) because the directories are
// watched under their real paths, and fsnotify names an event by the path
// its watch was added with.
type watchSet struct {
	// dirs are the directories watched: false once an event said the
	// directory itself was removed or moved (its watch is gone with it),
	// so the next follow adds it again if it is still needed.
	dirs map[string]bool
	// names are the paths whose events count: each symlink on the way to
	// the file and the file itself.
	names map[string]bool
}

// matters reports whether an event on name can change what the config
// path reads: an event on one of the names, or on a watched directory
// itself (a ConfigMap's old data directory being removed, a directory on
// the way renamed).
func (s *watchSet) matters(name string) bool {
	name = filepath.Clean(name)
	if _, ok := s.dirs[name]; ok {
		s.dirs[name] = false
		return true
	}
	return s.names[name]
}

// follow walks the symlinks from path again and moves the watches to the
// directories the walk now passes through: a re-pointed link or a swapped
// ConfigMap leads elsewhere. A directory that cannot be watched is tried
// again at the next follow.
func (s *watchSet) follow(path string, fw dirWatcher) {
	links, final := chain(path)
	names := make(map[string]bool, len(links)+1)
	need := make(map[string]bool, len(links)+1)
	for _, p := range append(links, final) {
		names[p] = true
		need[filepath.Dir(p)] = true
	}
	for d, live := range s.dirs {
		if !need[d] || !live {
			_ = fw.Remove(d) // may already be gone with its directory
			delete(s.dirs, d)
		}
	}
	for d := range need {
		if _, ok := s.dirs[d]; !ok && fw.Add(d) == nil {
			s.dirs[d] = true
		}
	}
	s.names = names
}

// chain resolves path as the kernel does, component by component from the
// root, and returns every symlink it follows on the way (the path itself
// if it is one, a ConfigMap's "..data", a symlinked directory above) and
// the real path it ends at. Any of them replaced changes what path reads,
// and each sits in a directory that can be watched. A component that does
// not exist ends the walk there: it is the name whose creation matters,
// and its directory exists.
func chain(path string) (links []string, final string) {
	resolved, rest := chainRoot(path)
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			// resolved holds no symlink, so its parent is lexical.
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return links, next
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if len(links) == maxLinks {
			return links, next
		}
		links = append(links, next)
		target, err := os.Readlink(next)
		if err != nil {
			return links, next
		}
		var more []string
		if filepath.IsAbs(target) {
			resolved, more = chainRoot(target)
		} else {
			more = chainSplit(target)
		}
		rest = append(more, rest...)
	}
	return links, resolved
}

// chainRoot splits an absolute path into its root (volume and separator)
// and the components below it.
func chainRoot(path string) (string, []string) {
	vol := filepath.VolumeName(path)
	return vol + string(filepath.Separator), chainSplit(path[len(vol):])
}

// chainSplit returns the components of a path; empty ones are dropped.
func chainSplit(path string) []string {
	return strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == filepath.Separator })
}
