package edgetls

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher turns file-system events around the certificate files into
// debounced reload signals. It watches DIRECTORIES, not files: a file watch
// dies when an editor or a deploy tool renames a new file over the old one,
// and a Kubernetes secret volume swaps a "..data" symlink beside the files
// without touching them. Any non-chmod event in a watched directory arms the
// debounce timer; the reload then compares file contents, so unrelated
// events cost one read and change nothing.
type watcher struct {
	fs       *fsnotify.Watcher
	files    []string
	debounce time.Duration

	reload chan struct{} // one pending signal at most
	errs   chan error
	stop   chan struct{}
	done   chan struct{}
}

// newWatcher starts watching the directories of every configured file and
// of the files their symlinks currently resolve to.
func (s *Source) newWatcher() (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("starting certificate file watcher: %w", err)
	}
	w := &watcher{
		fs:       fw,
		debounce: s.opts.ReloadDebounce,
		reload:   make(chan struct{}, 1),
		errs:     make(chan error, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, cf := range s.opts.Certs {
		w.files = append(w.files, cf.CertFile, cf.KeyFile)
	}
	if s.handshake.Load() != nil {
		w.files = append(w.files, s.opts.ClientCAFile)
	}
	for _, f := range w.files {
		abs, err := filepath.Abs(f)
		if err != nil {
			fw.Close()
			return nil, fmt.Errorf("resolving %s: %w", f, err)
		}
		if err := fw.Add(filepath.Dir(abs)); err != nil {
			fw.Close()
			return nil, fmt.Errorf("watching directory of %s: %w", f, err)
		}
	}
	w.addTargets()
	go w.loop()
	return w, nil
}

// addTargets watches the directories symlinked files point into, so a
// write in place through a symlink is seen too. Errors are ignored: the
// link's own directory is watched in any case.
func (w *watcher) addTargets() {
	for _, f := range w.files {
		if real, err := filepath.EvalSymlinks(f); err == nil {
			_ = w.fs.Add(filepath.Dir(real))
		}
	}
}

// loop forwards debounced reload signals until close.
func (w *watcher) loop() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(w.debounce)
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			select {
			case w.errs <- err:
			default: // the owner is behind; the next error will do
			}
			// Events may have been lost (an overflowed queue): read anyway.
			timer.Reset(w.debounce)
		case <-timer.C:
			w.addTargets()
			select {
			case w.reload <- struct{}{}:
			default: // a reload is already pending and will read the new files
			}
		}
	}
}

// close stops the loop and releases the watcher.
func (w *watcher) close() {
	close(w.stop)
	<-w.done
	w.fs.Close()
}
