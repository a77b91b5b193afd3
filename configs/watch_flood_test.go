package configs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// flood appends lines to files from a goroutine it owns, as a busy access
// log beside the config does, until the test ends.
type flood struct {
	lines atomic.Int64
	err   atomic.Value // the first write error, if any
}

// floodBatch lines are written to each file every floodTick: about 10,000
// lines a second, each its own write, as an unbuffered access log does.
const (
	floodBatch = 10
	floodTick  = time.Millisecond
)

func startFlood(t *testing.T, files ...string) *flood {
	t.Helper()
	var fds []*os.File
	for _, name := range files {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, f)
	}
	fl := &flood{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(floodTick) // the writer's pace
		defer tick.Stop()
		line := []byte(`{"level":"INFO","msg":"request","status":200,"duration_ms":0.4}` + "\n")
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for range floodBatch {
				for _, f := range fds {
					if _, err := f.Write(line); err != nil {
						fl.err.CompareAndSwap(nil, err)
						return
					}
				}
				fl.lines.Add(1)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		for _, f := range fds {
			f.Close()
		}
		if err, _ := fl.err.Load().(error); err != nil {
			t.Errorf("flood writer: %v", err)
		}
	})
	// The flood is on before the test goes on: a watcher that a busy
	// neighbour can starve is starved from the start.
	testwait.Until(t, 5*time.Second, "the flood to start", func() bool { return fl.lines.Load() >= 100 })
	return fl
}

// floodFiles names a log file beside the config path and, if the path
// leads elsewhere through symlinks, one beside its target.
func floodFiles(path string) []string {
	files := []string{filepath.Join(filepath.Dir(path), "azimuth.log")}
	if real, err := filepath.EvalSymlinks(path); err == nil && filepath.Dir(real) != filepath.Dir(path) {
		files = append(files, filepath.Join(filepath.Dir(real), "other.log"))
	}
	return files
}

// TestWatchSeesEditsDuringLogFlood runs the watcher as production does
// (DefaultDebounce) beside a log file written thousands of times a second:
// every edit, in place or by rename, is seen within two seconds.
func TestWatchSeesEditsDuringLogFlood(t *testing.T) {
	dir := t.TempDir()
	path := plainFile(t, dir)
	w := startWatch(t, path, DefaultDebounce)
	fl := startFlood(t, filepath.Join(dir, "azimuth.log"))
	floodStart, linesAtStart := time.Now(), fl.lines.Load()

	const edits = 6
	var slowest time.Duration
	for i := 1; i <= edits; i++ {
		content := fmt.Sprintf("edit %d", i)
		before := fl.lines.Load()
		start := time.Now()
		if i%2 == 0 {
			write(t, path, content)
		} else {
			tmp := filepath.Join(dir, ".azimuth.yaml.tmp")
			write(t, tmp, content)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}
		testwait.Until(t, 2*time.Second, fmt.Sprintf("edit %d seen during the flood", i), func() bool {
			return w.changes.Load() >= int64(i)
		})
		took := time.Since(start)
		slowest = max(slowest, took)
		if fl.lines.Load() == before {
			t.Fatalf("edit %d: the flood stalled, so it proves nothing", i)
		}
		if _, read := w.changedAt(); read[len(read)-1] != content {
			t.Fatalf("edit %d: onChange saw %q, want %q", i, read[len(read)-1], content)
		}
	}
	rate := float64(fl.lines.Load()-linesAtStart) / time.Since(floodStart).Seconds()
	if rate < 1000 {
		t.Fatalf("the flood wrote %.0f lines/s; want thousands for the test to mean anything", rate)
	}
	t.Logf("%d edits beside a log written %.0f lines/s: slowest seen after %v", edits, rate, slowest.Round(time.Millisecond))
}

// TestWatchFloodOfEditsReloadsWithinMaxDelay rewrites the config every few
// milliseconds for three seconds: the debounce never goes quiet, yet a
// change is delivered about once a MaxDelay during the stream, not only
// when it stops, and the last content is delivered after it. Each rewrite
// is whole (written beside, renamed over, as config managers do), so every
// look at the file finds new content; written in place, a look may find
// the file truncated twice in a row on a busy machine and deliver nothing
// new, which would be right but would blur what is counted here.
func TestWatchFloodOfEditsReloadsWithinMaxDelay(t *testing.T) {
	const (
		every = 3 * time.Millisecond
		span  = 3 * time.Second
	)
	dir := t.TempDir()
	path := plainFile(t, dir)
	tmp := filepath.Join(dir, ".azimuth.yaml.tmp")
	w := startWatch(t, path, DefaultDebounce)

	var (
		mu          sync.Mutex
		first, last time.Time
		lastContent string
		writeErr    error
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every) // the writer's pace
		defer tick.Stop()
		for i := 0; ; i++ {
			now := time.Now()
			mu.Lock()
			if first.IsZero() {
				first = now
			}
			stop := now.Sub(first) >= span
			mu.Unlock()
			if stop {
				return
			}
			content := fmt.Sprintf("rewrite %d", i)
			err := os.WriteFile(tmp, []byte(content), 0o644)
			if err == nil {
				err = os.Rename(tmp, path)
			}
			mu.Lock()
			last, lastContent, writeErr = time.Now(), content, err
			mu.Unlock()
			if err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })

	testwait.Until(t, span+5*time.Second, "the rewrites to end", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	testwait.Until(t, 2*time.Second, "the last rewrite delivered", func() bool {
		_, read := w.changedAt()
		return len(read) > 0 && read[len(read)-1] == lastContent
	})
	at, _ := w.changedAt()
	var during []time.Duration
	for _, a := range at {
		if !a.After(last) {
			during = append(during, a.Sub(first).Round(time.Millisecond))
		}
	}
	t.Logf("rewrites every %v for %v: changes delivered at %v after the first, %d in all", every, span, during, len(at))
	if len(during) == 0 {
		t.Fatalf("no change delivered while the file was rewritten for %v", span)
	}
	if during[0] > 1200*time.Millisecond {
		t.Errorf("first change delivered %v after the first rewrite; want within 1.2s (MaxDelay %v)", during[0], MaxDelay)
	}
	if len(during) < 2 {
		t.Errorf("%d changes delivered during %v of rewrites; want one about every %v", len(during), span, MaxDelay)
	}
}

// TestWatchIgnoresUnrelatedFiles makes every kind of event on other names
// in the config's directory, spaced wider than the debounce, then replaces
// the config once: the only look at the file is the one that finds the
// change.
func TestWatchIgnoresUnrelatedFiles(t *testing.T) {
	dir := t.TempDir()
	path := plainFile(t, dir)
	w := startWatch(t, path, testDebounce)
	log, err := os.OpenFile(filepath.Join(dir, "azimuth.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()

	steps := []struct {
		name string
		do   func() error
	}{
		{"create a neighbour", func() error { return os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("x"), 0o644) }},
		{"append to the log", func() error { _, err := log.WriteString("line\n"); return err }},
		{"rename the neighbour", func() error {
			return os.Rename(filepath.Join(dir, "other.yaml"), filepath.Join(dir, "azimuth.yaml.bak"))
		}},
		{"chmod the neighbour", func() error { return os.Chmod(filepath.Join(dir, "azimuth.yaml.bak"), 0o600) }},
		{"remove the neighbour", func() error { return os.Remove(filepath.Join(dir, "azimuth.yaml.bak")) }},
		{"create a directory", func() error { return os.Mkdir(filepath.Join(dir, "sub"), 0o755) }},
		{"write in it", func() error { return os.WriteFile(filepath.Join(dir, "sub", "azimuth.yaml"), []byte("x"), 0o644) }},
		{"remove it", func() error { return os.RemoveAll(filepath.Join(dir, "sub")) }},
		{"create a symlink to the config", func() error { return os.Symlink("azimuth.yaml", filepath.Join(dir, "alias.yaml")) }},
		{"remove the symlink", func() error { return os.Remove(filepath.Join(dir, "alias.yaml")) }},
	}
	// The steps are paced wider than the debounce, so a watcher that
	// counted them would look at the file after each.
	tick := time.NewTicker(2 * testDebounce)
	defer tick.Stop()
	for _, s := range steps {
		<-tick.C
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	<-tick.C

	// One event on the config's name, written whole elsewhere first.
	tmp := filepath.Join(dir, ".azimuth.yaml.tmp")
	write(t, tmp, "v2")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "the change", func() bool { return w.changes.Load() == 1 && w.checks.Load() >= 1 })
	if n := w.unchanged.Load(); n != 0 {
		t.Fatalf("%d looks at the file found nothing new: events on other names caused them", n)
	}
}
