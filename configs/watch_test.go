package configs

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// testDebounce keeps the tests quick; the behaviour does not depend on it.
const testDebounce = 30 * time.Millisecond

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// watched runs a Watcher on path and returns a counter of onChange calls,
// a counter of checks, and a stop function that waits for Run to return.
type watched struct {
	changes atomic.Int64
	checks  atomic.Int64
	// unchanged counts checks that found the content as it was: each is
	// a look the events should not have caused.
	unchanged atomic.Int64
	stop      func()

	mu sync.Mutex
	// at is when each onChange call came, and read what the file held
	// then.
	at   []time.Time
	read []string
}

// changedAt returns when the onChange calls came and what the file held
// at each.
func (w *watched) changedAt() ([]time.Time, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.at), slices.Clone(w.read)
}

func startWatch(t *testing.T, path string, debounce time.Duration) *watched {
	t.Helper()
	w, err := NewWatcher(path, debounce)
	if err != nil {
		t.Fatal(err)
	}
	ww := &watched{}
	w.afterCheck = func(changed bool) {
		if !changed {
			ww.unchanged.Add(1)
		}
		ww.checks.Add(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func() {
			data, _ := os.ReadFile(path)
			ww.mu.Lock()
			ww.at = append(ww.at, time.Now())
			ww.read = append(ww.read, string(data))
			ww.mu.Unlock()
			ww.changes.Add(1)
		})
	}()
	var once sync.Once
	ww.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(ww.stop)
	return ww
}

func TestWatchReplacementStyles(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares dir and returns the path to watch.
		setup func(t *testing.T, dir string) string
		// change replaces the file's content with "v2".
		change func(t *testing.T, dir, path string)
	}{
		{
			name:  "in-place write",
			setup: plainFile,
			change: func(t *testing.T, dir, path string) {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteString("v2"); err != nil {
					t.Fatal(err)
				}
				f.Close()
			},
		},
		{
			name:  "write then rename over",
			setup: plainFile,
			change: func(t *testing.T, dir, path string) {
				tmp := filepath.Join(dir, ".azimuth.yaml.swp")
				write(t, tmp, "v2")
				if err := os.Rename(tmp, path); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:  "delete then create",
			setup: plainFile,
			change: func(t *testing.T, dir, path string) {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				write(t, path, "v2")
			},
		},
		{
			name: "missing at first, appears later",
			setup: func(t *testing.T, dir string) string {
				return filepath.Join(dir, "azimuth.yaml")
			},
			change: func(t *testing.T, dir, path string) { write(t, path, "v2") },
		},
		{
			name:  "kubernetes configmap ..data swap",
			setup: configMap,
			change: func(t *testing.T, dir, path string) {
				newDir := filepath.Join(dir, "..2026_11_22_v2")
				mkdir(t, newDir)
				write(t, filepath.Join(newDir, "azimuth.yaml"), "v2")
				tmp := filepath.Join(dir, "..data_tmp")
				symlink(t, "..2026_11_22_v2", tmp)
				if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(filepath.Join(dir, "..2026_11_22_v1")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:  "symlink to another directory, target edited in place",
			setup: linkedElsewhere,
			change: func(t *testing.T, dir, path string) {
				write(t, filepath.Join(dir, "elsewhere", "real.yaml"), "v2")
			},
		},
		{
			name:  "symlink to another directory, target saved by rename",
			setup: linkedElsewhere,
			change: func(t *testing.T, dir, path string) {
				tmp := filepath.Join(dir, "elsewhere", ".real.yaml.swp")
				write(t, tmp, "v2")
				if err := os.Rename(tmp, filepath.Join(dir, "elsewhere", "real.yaml")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:  "symlink re-pointed to a file in a third directory",
			setup: linkedElsewhere,
			change: func(t *testing.T, dir, path string) {
				next := filepath.Join(dir, "next")
				mkdir(t, next)
				write(t, filepath.Join(next, "real.yaml"), "v2")
				repoint(t, filepath.Join(next, "real.yaml"), path)
			},
		},
		{
			name: "chain of two links, the middle one re-pointed",
			setup: func(t *testing.T, dir string) string {
				for _, d := range []string{"etc", "links", "a", "b"} {
					mkdir(t, filepath.Join(dir, d))
				}
				write(t, filepath.Join(dir, "a", "real.yaml"), "v1")
				symlink(t, filepath.Join("..", "a", "real.yaml"), filepath.Join(dir, "links", "current.yaml"))
				path := filepath.Join(dir, "etc", "azimuth.yaml")
				symlink(t, filepath.Join(dir, "links", "current.yaml"), path)
				return path
			},
			change: func(t *testing.T, dir, path string) {
				write(t, filepath.Join(dir, "b", "real.yaml"), "v2")
				repoint(t, filepath.Join("..", "b", "real.yaml"), filepath.Join(dir, "links", "current.yaml"))
			},
		},
		{
			name: "symlinked directory re-pointed, as a release switch does",
			setup: func(t *testing.T, dir string) string {
				mkdir(t, filepath.Join(dir, "releases", "1"))
				write(t, filepath.Join(dir, "releases", "1", "azimuth.yaml"), "v1")
				symlink(t, filepath.Join("releases", "1"), filepath.Join(dir, "current"))
				return filepath.Join(dir, "current", "azimuth.yaml")
			},
			change: func(t *testing.T, dir, path string) {
				mkdir(t, filepath.Join(dir, "releases", "2"))
				write(t, filepath.Join(dir, "releases", "2", "azimuth.yaml"), "v2")
				repoint(t, filepath.Join("releases", "2"), filepath.Join(dir, "current"))
			},
		},
	}
	for _, flood := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			// A log written all the time beside the file (and beside
			// its target) must not hold the change back: with a flood,
			// the change must be seen in about a second.
			wait := 10 * time.Second
			if flood {
				name, wait = "beside a flooded log/"+name, 2*time.Second
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				path := tt.setup(t, dir)
				w := startWatch(t, path, testDebounce)
				if flood {
					startFlood(t, floodFiles(path)...)
				}
				tt.change(t, dir, path)
				testwait.Until(t, wait, "onChange", func() bool { return w.changes.Load() >= 1 })
				got, err := os.ReadFile(path)
				if err != nil || string(got) != "v2" {
					t.Fatalf("after change the path reads %q, %v; want v2", got, err)
				}
				// A second change is seen too: the watch survived the
				// first, and follows where the links lead now.
				write(t, path, "v3")
				testwait.Until(t, wait, "second onChange", func() bool { return w.changes.Load() >= 2 })
			})
		}
	}
}

// linkedElsewhere lays out dir/etc/azimuth.yaml -> dir/elsewhere/real.yaml.
func linkedElsewhere(t *testing.T, dir string) string {
	other := filepath.Join(dir, "elsewhere")
	mkdir(t, other)
	write(t, filepath.Join(other, "real.yaml"), "v1")
	mkdir(t, filepath.Join(dir, "etc"))
	path := filepath.Join(dir, "etc", "azimuth.yaml")
	symlink(t, filepath.Join(other, "real.yaml"), path)
	return path
}

// repoint replaces the symlink link with one to target atomically, as
// `ln -s target tmp && mv -T tmp link` does.
func repoint(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	symlink(t, target, tmp)
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func plainFile(t *testing.T, dir string) string {
	path := filepath.Join(dir, "azimuth.yaml")
	write(t, path, "v1")
	return path
}

// configMap lays out dir as the kubelet does for a mounted ConfigMap:
// azimuth.yaml -> ..data/azimuth.yaml, ..data -> ..<timestamp>/.
func configMap(t *testing.T, dir string) string {
	v1 := filepath.Join(dir, "..2026_11_22_v1")
	mkdir(t, v1)
	write(t, filepath.Join(v1, "azimuth.yaml"), "v1")
	symlink(t, "..2026_11_22_v1", filepath.Join(dir, "..data"))
	path := filepath.Join(dir, "azimuth.yaml")
	symlink(t, filepath.Join("..data", "azimuth.yaml"), path)
	return path
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestWatchIgnoresTouchAndOtherFiles(t *testing.T) {
	dir := t.TempDir()
	path := plainFile(t, dir)
	w := startWatch(t, path, testDebounce)

	// Same content rewritten, and a neighbour changed: looked at, no call.
	write(t, path, "v1")
	write(t, filepath.Join(dir, "other.yaml"), "x")
	testwait.Until(t, 10*time.Second, "a check", func() bool { return w.checks.Load() >= 1 })
	if n := w.changes.Load(); n != 0 {
		t.Fatalf("onChange called %d times for unchanged content", n)
	}

	// Deleting the file is not a change either; the running config stays.
	checks := w.checks.Load()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "a check after delete", func() bool { return w.checks.Load() > checks })
	if n := w.changes.Load(); n != 0 {
		t.Fatalf("onChange called %d times for a deleted file", n)
	}
	write(t, path, "v2")
	testwait.Until(t, 10*time.Second, "onChange", func() bool { return w.changes.Load() == 1 })
}

func TestWatchDebouncesBursts(t *testing.T) {
	dir := t.TempDir()
	path := plainFile(t, dir)
	const writes = 20
	w := startWatch(t, path, 300*time.Millisecond)
	for i := range writes {
		write(t, path, "burst "+string(rune('a'+i)))
	}
	testwait.Until(t, 10*time.Second, "onChange", func() bool { return w.changes.Load() >= 1 })
	// A burst far shorter than the debounce is seen as one change; allow a
	// second in case the machine stalled mid-burst past the debounce.
	if n := w.changes.Load(); n > 2 {
		t.Fatalf("%d writes in a burst gave %d onChange calls; want them merged", writes, n)
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	path := plainFile(t, dir)
	w := startWatch(t, path, testDebounce)
	w.stop()
	// The fsnotify reader goroutine and Run's own are gone once Run returns.
	testwait.Until(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	write(t, path, "after stop")
	if n := w.changes.Load(); n != 0 {
		t.Fatalf("onChange called %d times", n)
	}
}

func TestWatchMissingDirectory(t *testing.T) {
	_, err := NewWatcher(filepath.Join(t.TempDir(), "nope", "azimuth.yaml"), 0)
	if err == nil {
		t.Fatal("NewWatcher on a missing directory: want an error")
	}
}
