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

// MaxDelay bounds how long events can put off a look at the file, counted
// from the first event the look has not covered yet. The debounce alone
// restarts on every event, so a file changed every few milliseconds (a
// config manager gone wild, a tight deploy loop) would never be read until
// it stopped; with the bound, such a stream is read about once a second.
const MaxDelay = time.Second

// Watcher calls back when the content of one config file changes, however
// the file is replaced: written in place, written elsewhere and renamed over
// (editors), deleted and created again, reached through symlinks that are
// re-pointed, or swapped as a Kubernetes ConfigMap does (the path is a
// symlink into a "..data" symlink that is replaced atomically). It also
// notices a file that is missing at first and appears later.
//
// It watches directories, not the file (a watch on the file dies with the
// inode a rename replaces): the file's own, and the directory of every
// symlink on the way to the file and of the file the chain ends at. Only
// events on those names count (see watchSet): the directory of a config is
// often busy with other files, the proxy's own access log among them, and
// an event there must not hold a reload back. Events that count start a
// debounce that ends after a quiet time or MaxDelay after the first of
// them, whichever is sooner; then the file's content hash is compared with
// the last one seen, so only a real change calls back and a touch does not.
// The file's directory itself must exist.
type Watcher struct {
	path     string
	debounce time.Duration
	fw       *fsnotify.Watcher
	set      watchSet

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
// A debounce of 0 means DefaultDebounce; one above MaxDelay is MaxDelay,
// since no event may put a look off longer than that.
func NewWatcher(path string, debounce time.Duration) (*Watcher, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watching config %s: %w", path, err)
	}
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	dir := filepath.Dir(abs)
	// The directory is watched under its real name, as every other one:
	// events are matched by the names the watches were added with.
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("watching config directory %s: %w", dir, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching config %s: %w", path, err)
	}
	if err := fw.Add(real); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching config directory %s: %w", dir, err)
	}
	w := &Watcher{
		path:     abs,
		debounce: min(debounce, MaxDelay),
		fw:       fw,
		set:      watchSet{dirs: map[string]bool{real: true}},
	}
	w.set.follow(abs, fw)
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
	s := settle{quiet: w.debounce, max: MaxDelay}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fw.Events:
			if !ok {
				return nil
			}
			if w.set.matters(ev.Name) {
				timer.Reset(s.event(time.Now()))
			}
		case _, ok := <-w.fw.Errors:
			if !ok {
				return nil
			}
			// An error is most often a queue overflow that lost events:
			// look at the file rather than trust that nothing happened.
			timer.Reset(s.event(time.Now()))
		case <-timer.C:
			// Events from now on are after this look began: they start
			// a new burst, so a change made during the look is not lost.
			s.looked()
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

// check follows the symlinks again and reports whether the content changed
// since last seen. Following comes first: once the new chain's directories
// are watched, a change after the read below sends an event, and one
// before it is in what is read. A missing file is not a change: the
// running config stays, and the file is looked at again when it comes
// back.
func (w *Watcher) check() bool {
	w.set.follow(w.path, w.fw)
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

// settle times the look at the file after events that matter: a quiet
// time after the last one (the file is likely whole by then), but never
// later than max after the first one not yet covered by a look.
type settle struct {
	quiet, max time.Duration
	// deadline is when the look must happen at the latest; zero while no
	// event waits for one.
	deadline time.Time
}

// event records an event at now and returns how long from now to wait
// before looking; zero or less means at once.
func (s *settle) event(now time.Time) time.Duration {
	if s.deadline.IsZero() {
		s.deadline = now.Add(s.max)
	}
	return min(s.quiet, s.deadline.Sub(now))
}

// looked records that the look began: the next event starts a new burst.
func (s *settle) looked() {
	s.deadline = time.Time{}
}
