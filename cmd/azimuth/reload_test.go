package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// reloadSets are two backend sets in three zones; all stay up, so any
// failed request during a switch is the reload's fault.
func reloadSets(t *testing.T) (a, b []*reloadBackend) {
	a = []*reloadBackend{reloadStartBackend(t, "127.0.1.1", 0), reloadStartBackend(t, "127.0.2.1", 0)}
	b = []*reloadBackend{reloadStartBackend(t, "127.0.2.2", 0), reloadStartBackend(t, "127.0.3.1", 0)}
	return a, b
}

// reloadWaitBackends polls /status until the pool holds exactly want.
func reloadWaitBackends(t *testing.T, admin string, want []*reloadBackend) {
	t.Helper()
	w := reloadAddrs(want...)
	var got []string
	testwait.Until(t, 10*time.Second, fmt.Sprintf("pool web = %v (have %v)", w, got), func() bool {
		got = reloadPoolBackends(reloadGetStatus(t, admin), "web")
		return slices.Equal(got, w)
	})
}

func TestReloadFiftyEditsUnderTraffic(t *testing.T) {
	setA, setB := reloadSets(t)
	_, path := reloadDir(t)
	cfg := reloadConfig{listen: "127.0.0.1:0", backends: setA}
	reloadWrite(t, path, cfg.yaml())
	_, admin := reloadStart(t, path)
	url := "http://" + reloadListenerAddr(t, admin, "web") + "/"
	const workers = 4
	tr := reloadStartTraffic(t, reloadClient(t, workers), url, workers)

	loadedAt := reloadGetStatus(t, admin).Config.LoadedAt
	const edits = 50
	for i := 1; i <= edits; i++ {
		set := setA
		if i%2 == 1 {
			set = setB
		}
		cfg.backends = set
		reloadWrite(t, path, cfg.yaml())
		testwait.Until(t, 10*time.Second, fmt.Sprintf("edit %d counted as a successful reload", i), func() bool {
			return reloadMetric(t, admin, reloadOK) == float64(i+1)
		})
		st := reloadGetStatus(t, admin)
		if got, want := reloadPoolBackends(st, "web"), reloadAddrs(set...); !slices.Equal(got, want) {
			t.Fatalf("edit %d: pool backends %v, want %v", i, got, want)
		}
		sum := sha256.Sum256([]byte(cfg.yaml()))
		if st.Config.Hash != hex.EncodeToString(sum[:]) || !st.Config.LoadedAt.After(loadedAt) || !st.Config.LastReloadOK {
			t.Fatalf("edit %d: /status config %+v; want the file's SHA-256 and a load time after %v", i, st.Config, loadedAt)
		}
		loadedAt = st.Config.LoadedAt
	}
	tr.check(t, edits)
	if got := reloadMetric(t, admin, reloadOK); got != edits+1 {
		t.Errorf("%s = %v, want %d (startup and every edit)", reloadOK, got, edits+1)
	}
	if got := reloadMetric(t, admin, reloadFailed); got != 0 {
		t.Errorf("%s = %v, want 0", reloadFailed, got)
	}
	// Zone preference: set A serves from zone-a only; set B has no local
	// backend and spreads over zone-b and zone-c.
	for _, b := range []*reloadBackend{setA[0], setB[0], setB[1]} {
		if tr.servedBy(b.addr) == 0 {
			t.Errorf("backend %s served nothing", b.addr)
		}
	}
}

func TestReloadBadFileKeepsServing(t *testing.T) {
	setA, setB := reloadSets(t)
	_, path := reloadDir(t)
	cfg := reloadConfig{listen: "127.0.0.1:0", backends: setA}
	reloadWrite(t, path, cfg.yaml())
	p, admin := reloadStart(t, path)
	url := "http://" + reloadListenerAddr(t, admin, "web") + "/"
	tr := reloadStartTraffic(t, reloadClient(t, 3), url, 3)
	const lastSuccess = "azimuth_config_last_reload_success_timestamp_seconds"
	started := reloadMetric(t, admin, lastSuccess)
	if now := float64(time.Now().Unix()); started < now-60 || started > now+1 {
		t.Errorf("%s = %v at startup, want about %v", lastSuccess, started, now)
	}

	good := reloadConfig{listen: "127.0.0.1:0", backends: setB}.yaml()
	// Cut inside the last backend's flow mapping: a YAML syntax error.
	half := good[:strings.LastIndex(good, "{ address:")+14]
	unknown := strings.Replace(good, "      - { address:", "      - { adress:", 1)
	tests := []struct {
		name, content string
		inError       string // in /status's last_reload_error
		logKey        string // the key of the "config reload rejected" line; "" for a syntax error
		logLine       int
	}{
		{"half-written", half, path + ":", "", 0},
		{"unknown key", unknown, "unknown key", "pools[0].backends[0].adress", strings.Count(unknown[:strings.Index(unknown, "adress")], "\n") + 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reloadWrite(t, path, tt.content)
			testwait.Until(t, 10*time.Second, "reload counted as failed", func() bool {
				return reloadMetric(t, admin, reloadFailed) == float64(i+1)
			})
			if v := reloadMetric(t, admin, reloadLastOK); v != 0 {
				t.Errorf("%s = %v after a bad file, want 0", reloadLastOK, v)
			}
			st := reloadGetStatus(t, admin)
			if st.Config.LastReloadOK || !strings.Contains(st.Config.LastReloadErr, tt.inError) {
				t.Errorf("/status config = %+v; want last_reload_ok false and an error containing %q", st.Config, tt.inError)
			}
			if got, want := reloadPoolBackends(st, "web"), reloadAddrs(setA...); !slices.Equal(got, want) {
				t.Errorf("pool backends %v after a bad file, want the running %v", got, want)
			}
			if tt.logKey != "" {
				l := p.waitLog(t, "config reload rejected", func(l map[string]any) bool { return l["key"] == tt.logKey })
				want := fmt.Sprintf("%s:%d: %s: ", path, tt.logLine, tt.logKey)
				if at, _ := l["at"].(string); !strings.HasPrefix(at, want) {
					t.Errorf("rejected reload logged at %q, want prefix %q", at, want)
				}
			}
		})
	}
	if v := reloadMetric(t, admin, lastSuccess); v != started {
		t.Errorf("%s moved from %v to %v with failed reloads only", lastSuccess, started, v)
	}
	before := tr.servedBy(setA[0].addr)
	testwait.Until(t, 5*time.Second, "the running pool keeps serving after bad files", func() bool {
		return tr.servedBy(setA[0].addr) > before
	})

	reloadWrite(t, path, good)
	testwait.Until(t, 10*time.Second, "the fixed file is applied", func() bool {
		return reloadMetric(t, admin, reloadOK) == 2
	})
	if v := reloadMetric(t, admin, reloadLastOK); v != 1 {
		t.Errorf("%s = %v after the fix, want 1", reloadLastOK, v)
	}
	if v := reloadMetric(t, admin, lastSuccess); v <= started {
		t.Errorf("%s = %v after the fix, want later than %v", lastSuccess, v, started)
	}
	if st := reloadGetStatus(t, admin); !st.Config.LastReloadOK || st.Config.LastReloadErr != "" {
		t.Errorf("/status config after the fix = %+v", st.Config)
	}
	testwait.Until(t, 5*time.Second, "the new backends serve", func() bool {
		return tr.servedBy(setB[0].addr) > 0 || tr.servedBy(setB[1].addr) > 0
	})
	tr.check(t, 10)
}

// reloadLayout places a config file and replaces it in one style.
type reloadLayout struct {
	name    string
	setup   func(t *testing.T, dir, content string) string // returns the path azimuth reads
	replace func(t *testing.T, p *process, admin, dir, path, content string)
}

func reloadLayouts() []reloadLayout {
	plain := func(t *testing.T, dir, content string) string {
		path := filepath.Join(dir, "azimuth.yaml")
		reloadWrite(t, path, content)
		return path
	}
	return []reloadLayout{
		{"in-place write", plain, func(t *testing.T, _ *process, _, _, path, content string) {
			reloadWrite(t, path, content)
		}},
		{"write then rename", plain, func(t *testing.T, _ *process, _, dir, path, content string) {
			tmp := filepath.Join(dir, ".azimuth.yaml.swp")
			reloadWrite(t, tmp, content)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete then create", plain, func(t *testing.T, _ *process, _, _, path, content string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			reloadWrite(t, path, content)
		}},
		{"missing for a while then appears", plain, func(t *testing.T, p *process, admin, _, path, content string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			// A SIGHUP while it is missing proves the process saw it gone:
			// the reload fails and the running config stays.
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, 10*time.Second, "reload of a missing file fails", func() bool {
				return reloadMetric(t, admin, reloadFailed) == 1
			})
			reloadWrite(t, path, content)
		}},
		{"..data symlink swap", func(t *testing.T, dir, content string) string {
			reloadConfigMapVersion(t, dir, "..2026_01", content)
			if err := os.Symlink("..2026_01", filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "azimuth.yaml")
			if err := os.Symlink(filepath.Join("..data", "azimuth.yaml"), path); err != nil {
				t.Fatal(err)
			}
			return path
		}, func(t *testing.T, _ *process, _, dir, _, content string) {
			reloadConfigMapVersion(t, dir, "..2026_02", content)
			tmp := filepath.Join(dir, "..data_tmp")
			if err := os.Symlink("..2026_02", tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(dir, "..2026_01")); err != nil {
				t.Fatal(err)
			}
		}},
	}
}

// reloadConfigMapVersion writes one timestamped directory of a ConfigMap
// volume.
func reloadConfigMapVersion(t *testing.T, dir, version, content string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, version), 0o755); err != nil {
		t.Fatal(err)
	}
	reloadWrite(t, filepath.Join(dir, version, "azimuth.yaml"), content)
}

func TestReloadOnEveryReplacementStyle(t *testing.T) {
	setA, setB := reloadSets(t)
	for _, tt := range reloadLayouts() {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir, reloadConfig{listen: "127.0.0.1:0", backends: setA}.yaml())
			p, admin := reloadStart(t, path)
			reloadWaitBackends(t, admin, setA)
			tt.replace(t, p, admin, dir, path, reloadConfig{listen: "127.0.0.1:0", backends: setB}.yaml())
			reloadWaitBackends(t, admin, setB)
			// The count follows the apply that changed the pool's set.
			testwait.Until(t, 5*time.Second, reloadOK+" to count startup and the change", func() bool {
				return reloadMetric(t, admin, reloadOK) == 2
			})
			if v := reloadMetric(t, admin, reloadLastOK); v != 1 {
				t.Errorf("%s = %v, want 1", reloadLastOK, v)
			}
			p.waitLog(t, "config reloaded", nil)
		})
	}
}

// A listener whose limits change on the same address gets a new socket,
// bound with SO_REUSEPORT before the old one closes; clients keep going.
func TestReloadListenerBindingChangeKeepsServing(t *testing.T) {
	setA, _ := reloadSets(t)
	_, path := reloadDir(t)
	listen := fmt.Sprintf("127.0.0.1:%d", reloadFreePort(t))
	limits := func(i int) string {
		return fmt.Sprintf("    limits: { idle_timeout: %ds }\n", 30+i)
	}
	cfg := reloadConfig{listen: listen, backends: setA, listenerExtra: limits(0)}
	reloadWrite(t, path, cfg.yaml())
	p, admin := reloadStart(t, path)
	if got := reloadListenerAddr(t, admin, "web"); got != listen {
		t.Fatalf("listener bound %s, want %s", got, listen)
	}
	const workers = 4
	tr := reloadStartTraffic(t, reloadClient(t, workers), "http://"+listen+"/", workers)
	const edits = 5
	for i := 1; i <= edits; i++ {
		cfg.listenerExtra = limits(i)
		reloadWrite(t, path, cfg.yaml())
		testwait.Until(t, 10*time.Second, fmt.Sprintf("edit %d applied", i), func() bool {
			return reloadMetric(t, admin, reloadOK) == float64(i+1)
		})
		before := tr.ok.Load()
		testwait.Until(t, 5*time.Second, "traffic after the edit", func() bool { return tr.ok.Load() > before+workers })
	}
	tr.check(t, edits)
	p.waitLog(t, "config applied", func(l map[string]any) bool {
		opened, _ := l["listeners_opened"].([]any)
		return len(opened) == 1 && opened[0] == "web@"+listen
	})
	p.waitLog(t, "listener closed", func(l map[string]any) bool { return l["address"] == listen })
}

// A reload warns that admin.address only changes on restart when the file
// changed it, not on every reload of a file that keeps "host:0".
func TestAdminAddressWarningOnlyWhenChanged(t *testing.T) {
	dir := t.TempDir()
	path := writeRunConfig(t, dir)
	p := start(t, path)
	p.waitLog(t, "admin listening", nil)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(content string) {
		t.Helper()
		reloadWrite(t, path, content)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%x", sha256.Sum256([]byte(content)))
		p.waitLog(t, "config reloaded", func(l map[string]any) bool { return l["hash"] == want })
	}
	warned := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		n := 0
		for _, l := range p.logs {
			if l["msg"] == "admin.address changes on restart" {
				n++
			}
		}
		return n
	}
	reload(string(data) + "# an edit that keeps the admin address\n")
	if n := warned(); n != 0 {
		t.Fatalf("%d warnings after a reload that kept admin.address", n)
	}
	reload(strings.Replace(string(data), "admin: { address: 127.0.0.1:0 }", "admin: { address: 127.0.0.2:0 }", 1))
	if n := warned(); n != 1 {
		t.Fatalf("%d warnings after a reload that changed admin.address, want 1", n)
	}
}
