package instance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azimuthproxy/azimuth/discovery"
)

// A drained backend that leaves the pool keeps its drain (it applies again
// when the backend comes back) until an operator enables it, which the
// admin API accepts though the backend is gone; a state file that cannot
// be written leaves the drain on this proxy and answers 503.
func TestOverridesOfABackendThatLeft(t *testing.T) {
	be1 := backend(t, "127.0.1.1", named("one"))
	be2 := backend(t, "127.0.1.2", named("two"))
	dir := t.TempDir()
	file := filepath.Join(dir, "state", "overrides.json")
	config := func(backends ...string) string {
		list := ""
		for _, b := range backends {
			list += fmt.Sprintf("{ address: %s, zone: a }, ", b)
		}
		return fmt.Sprintf(`zone: a
admin: { address: 127.0.0.1:0 }
overrides: { file: state/overrides.json }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
pools:
  - name: web
    backends: [ %s ]
`, list)
	}
	i := newInstance(t)
	if err := i.Apply(parse(t, dir, "a.yaml", config(be1, be2))); err != nil {
		t.Fatal(err)
	}
	admin := "http://" + i.AdminAddr()
	if code, body := do(t, "POST", admin+"/pools/web/backends/"+be1+"/drain", ""); code != 200 {
		t.Fatalf("drain = %d %s", code, body)
	}
	kept := func() discovery.Overrides {
		t.Helper()
		o, err := discovery.LoadOverrides(file)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	key := discovery.OverrideKey{Kind: discovery.BackendDrain, Pool: "web", Name: be1}
	if _, ok := kept()[key]; !ok {
		t.Fatalf("the state file has %v, want the drain", kept())
	}

	// The backend leaves and comes back: still drained.
	if err := i.Apply(parse(t, dir, "a.yaml", config(be2))); err != nil {
		t.Fatal(err)
	}
	if err := i.Apply(parse(t, dir, "a.yaml", config(be1, be2))); err != nil {
		t.Fatal(err)
	}
	if b := i.registry.Lookup("web").Backend(be1); b == nil || !b.Drained() {
		t.Fatal("a drained backend that came back is not drained")
	}

	// It leaves again, and is enabled while gone: the drain is forgotten.
	if err := i.Apply(parse(t, dir, "a.yaml", config(be2))); err != nil {
		t.Fatal(err)
	}
	code, body := do(t, "POST", admin+"/pools/web/backends/"+be1+"/enable", "")
	var ans struct {
		State   string `json:"state"`
		Drained bool   `json:"drained"`
	}
	_ = json.Unmarshal([]byte(body), &ans)
	if code != 200 || ans.State != "gone" || ans.Drained {
		t.Fatalf("enable of a gone backend = %d %s", code, body)
	}
	if len(kept()) != 0 {
		t.Fatalf("the state file still has %v", kept())
	}
	if code, _ := do(t, "POST", admin+"/pools/web/backends/"+be1+"/enable", ""); code != 404 {
		t.Errorf("enable of a gone backend with no drain = %d, want 404", code)
	}
	if err := i.Apply(parse(t, dir, "a.yaml", config(be1, be2))); err != nil {
		t.Fatal(err)
	}
	if b := i.registry.Lookup("web").Backend(be1); b == nil || b.Drained() {
		t.Fatal("an enabled backend came back drained")
	}

	// The state file cannot be written: the drain applies here, 503.
	if err := os.Chmod(filepath.Dir(file), 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Dir(file), 0o700) })
	if os.Geteuid() == 0 {
		// root writes anyway: make the file's path a directory instead.
		_ = os.Chmod(filepath.Dir(file), 0o700)
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(file, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	code, body = do(t, "POST", admin+"/pools/web/zones/a/drain", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "overrides file") {
		t.Fatalf("drain with the file not writable = %d %s, want 503 naming the file", code, body)
	}
	if !i.registry.Lookup("web").ZoneDrained("a") {
		t.Error("a drain that could not be kept must still apply here")
	}
}
