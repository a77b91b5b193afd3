package configs

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestChain(t *testing.T) {
	tests := []struct {
		name string
		// setup lays out dir and returns the path to resolve.
		setup func(t *testing.T, dir string) string
		// links and final are relative to dir.
		links []string
		final string
	}{
		{
			name:  "plain file",
			setup: plainFile,
			final: "azimuth.yaml",
		},
		{
			name: "missing file",
			setup: func(t *testing.T, dir string) string {
				return filepath.Join(dir, "azimuth.yaml")
			},
			final: "azimuth.yaml",
		},
		{
			name:  "link to another directory",
			setup: linkedElsewhere,
			links: []string{"etc/azimuth.yaml"},
			final: "elsewhere/real.yaml",
		},
		{
			name:  "kubernetes configmap",
			setup: configMap,
			links: []string{"azimuth.yaml", "..data"},
			final: "..2026_11_22_v1/azimuth.yaml",
		},
		{
			name: "configmap whose data directory is gone",
			setup: func(t *testing.T, dir string) string {
				path := configMap(t, dir)
				if err := os.RemoveAll(filepath.Join(dir, "..2026_11_22_v1")); err != nil {
					t.Fatal(err)
				}
				return path
			},
			links: []string{"azimuth.yaml", "..data"},
			final: "..2026_11_22_v1",
		},
		{
			name: "relative link with .. through a symlinked directory",
			setup: func(t *testing.T, dir string) string {
				mkdir(t, filepath.Join(dir, "releases", "1", "conf"))
				write(t, filepath.Join(dir, "releases", "1", "real.yaml"), "v1")
				symlink(t, filepath.Join("releases", "1", "conf"), filepath.Join(dir, "current"))
				// current/azimuth.yaml -> ../real.yaml: ".." of the real
				// directory releases/1/conf, not of dir.
				symlink(t, filepath.Join("..", "real.yaml"), filepath.Join(dir, "releases", "1", "conf", "azimuth.yaml"))
				return filepath.Join(dir, "current", "azimuth.yaml")
			},
			links: []string{"current", "releases/1/conf/azimuth.yaml"},
			final: "releases/1/real.yaml",
		},
		{
			name: "loop of links",
			setup: func(t *testing.T, dir string) string {
				symlink(t, "b.yaml", filepath.Join(dir, "a.yaml"))
				symlink(t, "a.yaml", filepath.Join(dir, "b.yaml"))
				return filepath.Join(dir, "a.yaml")
			},
			// maxLinks of them, alternating, then the walk stops.
			links: slices.Repeat([]string{"a.yaml", "b.yaml"}, maxLinks/2),
			final: "a.yaml",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			links, final := chain(tt.setup(t, dir))
			var want []string
			for _, l := range tt.links {
				want = append(want, filepath.Join(dir, l))
			}
			if !slices.Equal(links, want) {
				t.Errorf("links = %q, want %q", links, want)
			}
			if w := filepath.Join(dir, tt.final); final != w {
				t.Errorf("final = %q, want %q", final, w)
			}
		})
	}
}

// fakeDirs records the watches a watchSet asks for.
type fakeDirs map[string]bool

func (f fakeDirs) Add(name string) error    { f[name] = true; return nil }
func (f fakeDirs) Remove(name string) error { delete(f, name); return nil }

func TestWatchSetFollowsTheSwap(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := configMap(t, dir)
	fw := fakeDirs{}
	s := watchSet{dirs: map[string]bool{}}
	s.follow(path, fw)
	v1 := filepath.Join(dir, "..2026_11_22_v1")
	if want := (fakeDirs{dir: true, v1: true}); !maps.Equal(fw, want) {
		t.Fatalf("watches %v, want %v", fw, want)
	}
	for _, tt := range []struct {
		name string
		want bool
	}{
		{filepath.Join(dir, "azimuth.yaml"), true},
		{filepath.Join(dir, "..data"), true},
		{filepath.Join(v1, "azimuth.yaml"), true},
		{dir + "/./azimuth.yaml", true},
		{filepath.Join(dir, "..data_tmp"), false},
		{filepath.Join(dir, "azimuth.log"), false},
		{filepath.Join(dir, "azimuth.yaml.swp"), false},
		{filepath.Join(v1, "other.yaml"), false},
		{v1, true}, // the data directory itself removed
	} {
		if got := s.matters(tt.name); got != tt.want {
			t.Errorf("matters(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}

	// The swap: ..data now leads to v2, and v1 is gone.
	v2 := filepath.Join(dir, "..2026_11_22_v2")
	mkdir(t, v2)
	write(t, filepath.Join(v2, "azimuth.yaml"), "v2")
	repoint(t, "..2026_11_22_v2", filepath.Join(dir, "..data"))
	s.follow(path, fw)
	if want := (fakeDirs{dir: true, v2: true}); !maps.Equal(fw, want) {
		t.Fatalf("after the swap, watches %v, want %v", fw, want)
	}
	if !s.matters(filepath.Join(v2, "azimuth.yaml")) || s.matters(filepath.Join(v1, "azimuth.yaml")) {
		t.Errorf("after the swap, events in the new data directory must count and those in the old must not")
	}
}

func TestSettle(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name string
		// events are offsets from the start; a negative one stands for
		// a look at the file.
		events []time.Duration
		// want is the wait returned for each event (ignored for looks).
		want []time.Duration
	}{
		{"one event waits the quiet time", []time.Duration{0}, []time.Duration{200 * ms}},
		{"a later event restarts the quiet time", []time.Duration{0, 100 * ms}, []time.Duration{200 * ms, 200 * ms}},
		{"near the deadline the wait shrinks", []time.Duration{0, 900 * ms}, []time.Duration{200 * ms, 100 * ms}},
		{"past the deadline it is at once", []time.Duration{0, 1100 * ms}, []time.Duration{200 * ms, -100 * ms}},
		{"a look starts a new burst", []time.Duration{0, -1, 1100 * ms}, []time.Duration{200 * ms, 0, 200 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := settle{quiet: 200 * ms, max: time.Second}
			start := time.Now()
			for i, e := range tt.events {
				if e < 0 {
					s.looked()
					continue
				}
				if got := s.event(start.Add(e)); got != tt.want[i] {
					t.Errorf("event %d at %v: wait %v, want %v", i, e, got, tt.want[i])
				}
			}
		})
	}
}
