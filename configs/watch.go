package configs

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a Watcher waits after the last event of a
// burst before it looks at the file: editors and config managers write a
// file in several steps, and reloading on the first would read half of it.
const DefaultDebounce = 200 * time.Millisecond

// Watcher calls back when the content of one config file changes, however
// the file is replaced: written in place, written elsewhere and renamed over
// (editors), deleted and created again, or swapped as a Kubernetes ConfigMap
// does (the path is a symlink into a "..data" symlink that is replaced
// atomically). It also notices a file that is missing at first and appears
// later.
//
// It watches the file's directory, not the file (a watch on the file dies
// with the inode a rename replaces), plus the directory the path's symlinks
// lead to, if elsewhere. Any event there starts the debounce; when it ends,
// the file's content hash is compared with the last one seen, so only a real
// change calls back and a touch or an unrelated file in the directory does
// not. The directory itself must exist.
type Watcher struct {
	path     string
	dir      string
	debounce time.Duration
	fw       *fsnotify.Watcher

	// target is the extra directory watched because symlinks lead there;
	// "" when the file resolves inside dir.
	target string
	// last is the content hash seen last; zero while the file is missing
	// or unreadable.
	last [sha256.Size]byte
	// afterCheck, if set, runs after every look at the file; tests use it
	// to know a check happened without sleeping.
	afterCheck func(changed bool)
}

// NewWatcher starts watching path. Changes made after it returns are
// noticed once Run is called, so create it before the first Load: an edit
// landing between the two then costs one redundant reload, not a lost one.
// A debounce of 0 means DefaultDebounce.
func NewWatcher(path string, debounce time.Duration) (*Watcher, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watching config %s: %w", path, err)
	}
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching config %s: %w", path, err)
	}
	w := &Watcher{path: abs, dir: filepath.Dir(abs), debounce: debounce, fw: fw}
	if err := fw.Add(w.dir); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching config directory %s: %w", w.dir, err)
	}
	w.followSymlinks()
	w.last, _ = w.hash()
	return w, nil
}

// Watch watches path until ctx is done, calling onChange after each change
// of its content; it is NewWatcher followed by Run.
func Watch(ctx context.Context, path string, debounce time.Duration, onChange func()) error {
	w, err := NewWatcher(path, debounce)
	if err != nil {
		return err
	}
	return w.Run(ctx, onChange)
}

// Run delivers changes to onChange, one call at a time on Run's goroutine,
// until ctx is done; then it releases the watch and returns nil. Its caller
// owns that goroutine. A Watcher runs once.
func (w *Watcher) Run(ctx context.Context, onChange func()) error {
	defer w.Close()
	timer := time.NewTimer(w.debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.fw.Events:
			if !ok {
				return nil
			}
			timer.Reset(w.debounce)
		case _, ok := <-w.fw.Errors:
			if !ok {
				return nil
			}
			// An error is most often a queue overflow that lost events:
			// look at the file rather than trust that nothing happened.
			timer.Reset(w.debounce)
		case <-timer.C:
			changed := w.check()
			if changed {
				onChange()
			}
			if w.afterCheck != nil {
				w.afterCheck(changed)
			}
		}
	}
}

// Close releases the watch; Run calls it on return. It is safe to call
// more than once.
func (w *Watcher) Close() error {
	return w.fw.Close()
}

// check re-follows symlinks and reports whether the content changed since
// last seen. A missing file is not a change: the running config stays, and
// the file is looked at again when it comes back.
func (w *Watcher) check() bool {
	w.followSymlinks()
	sum, ok := w.hash()
	if !ok || sum == w.last {
		return false
	}
	w.last = sum
	return true
}

func (w *Watcher) hash() ([sha256.Size]byte, bool) {
	data, err := os.ReadFile(w.path)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(data), true
}

// followSymlinks keeps a watch on the directory the path really lives in,
// when symlinks lead out of w.dir, so an in-place edit of the target is
// seen too. A ConfigMap swap moves that directory; the old one is dropped.
func (w *Watcher) followSymlinks() {
	real, err := filepath.EvalSymlinks(w.path)
	if err != nil {
		return
	}
	target := filepath.Dir(real)
	if target == w.dir || target == w.target {
		return
	}
	if w.target != "" {
		_ = w.fw.Remove(w.target) // may already be gone with its directory
		w.target = ""
	}
	if w.fw.Add(target) == nil {
		w.target = target
	}
}
