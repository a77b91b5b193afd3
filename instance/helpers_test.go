package instance

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
)

// The tests run instances in this process, on loopback: real backends,
// real listeners, real admin listeners, no binary. An address stands for
// a zone: 127.0.1.x is zone-a, 127.0.2.x zone-b.

// newInstance returns an instance with no config; the test's end drains
// it at once.
func newInstance(t *testing.T) *Instance {
	t.Helper()
	return newInstanceWith(t, Options{})
}

// newInstanceWith is newInstance with the given options.
func newInstanceWith(t *testing.T, o Options) *Instance {
	t.Helper()
	i, err := New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		now, cancel := context.WithCancel(context.Background())
		cancel()
		i.Drain(now)
	})
	return i
}

// parse parses a config as if read from dir/name, so the files it names
// are found in dir.
func parse(t *testing.T, dir, name, yaml string) *configs.Config {
	t.Helper()
	c, err := configs.Parse(filepath.Join(dir, name), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeFile writes a config file in place, as `cat > file` does.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// backend serves h on ip:0 until the test ends and returns its address.
func backend(t *testing.T, ip string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("backend on %s: %v", ip, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// named answers every request with name.
func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) })
}

// freeAddr returns ip with a port that was free a moment ago.
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// get sends one GET on a connection of its own and returns the status
// and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// refused reports whether nothing accepts connections on addr.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// listenerAddr is the bound address of the named listener in i's status.
func listenerAddr(t *testing.T, i *Instance, name string) string {
	t.Helper()
	for _, l := range i.Status().Listeners {
		if l.Name == name {
			return l.Address
		}
	}
	t.Fatalf("no listener %s in the status", name)
	return ""
}

// configGoroutineRoots are the functions a config's goroutines run: a
// pool's health checks and outlier detection, its Consul watch, a
// listener's servers and its certificate watch.
var configGoroutineRoots = []string{
	"health.(*Checker).Run", "health.(*Detector).Run", "discovery.(*Watcher).Run",
	"h1server.(*Server).Serve", "azimuth/tls.(*Server).Serve", "azimuth/tls.(*Source).Run",
}

// configGoroutines counts the goroutines running each of
// configGoroutineRoots.
func configGoroutines() map[string]int {
	buf := make([]byte, 4<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	out := map[string]int{}
	for _, root := range configGoroutineRoots {
		out[root] = strings.Count(stacks, root+"(")
	}
	return out
}

// noMore reports whether now has no more goroutines of any root than
// before (goroutines of an earlier test may still be ending).
func noMore(now, before map[string]int) bool {
	for root, n := range now {
		if n > before[root] {
			return false
		}
	}
	return true
}
