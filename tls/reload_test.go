package edgetls

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// replaceMode is one way operators and tools swap certificate files.
type replaceMode struct {
	name string
	// setup writes the first pair and returns the paths to configure.
	setup func(t *testing.T, dir string, c issued) CertFile
	// replace swaps in the second pair.
	replace func(t *testing.T, dir string, cf CertFile, c issued)
}

var replaceModes = []replaceMode{
	{
		name:  "rename over",
		setup: func(t *testing.T, dir string, c issued) CertFile { return writePair(t, dir, "site", c) },
		replace: func(t *testing.T, _ string, cf CertFile, c issued) {
			renameOver(t, cf.KeyFile, c.keyPEM)
			renameOver(t, cf.CertFile, c.certPEM)
		},
	},
	{
		name:  "write in place",
		setup: func(t *testing.T, dir string, c issued) CertFile { return writePair(t, dir, "site", c) },
		replace: func(t *testing.T, _ string, cf CertFile, c issued) {
			writeFile(t, cf.CertFile, c.certPEM)
			writeFile(t, cf.KeyFile, c.keyPEM)
		},
	},
	{
		// The layout of a Kubernetes secret volume: the visible files are
		// symlinks through "..data", which is itself swapped by rename.
		name: "symlink swap",
		setup: func(t *testing.T, dir string, c issued) CertFile {
			mkdir(t, filepath.Join(dir, "..v1"))
			writePair(t, filepath.Join(dir, "..v1"), "tls", c)
			symlink(t, "..v1", filepath.Join(dir, "..data"))
			symlink(t, "..data/tls.pem", filepath.Join(dir, "tls.pem"))
			symlink(t, "..data/tls-key.pem", filepath.Join(dir, "tls-key.pem"))
			return CertFile{CertFile: filepath.Join(dir, "tls.pem"), KeyFile: filepath.Join(dir, "tls-key.pem")}
		},
		replace: func(t *testing.T, dir string, _ CertFile, c issued) {
			mkdir(t, filepath.Join(dir, "..v2"))
			writePair(t, filepath.Join(dir, "..v2"), "tls", c)
			symlink(t, "..v2", filepath.Join(dir, "..data_tmp"))
			if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
				t.Fatal(err)
			}
		},
	},
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// servedSerial makes a new TCP handshake and returns the leaf's serial.
func servedSerial(t *testing.T, addr string, ca *testCA) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "site.test"})
	if err != nil {
		t.Fatalf("new handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// trafficLoop sends requests over one kept-alive connection until stopped.
type trafficLoop struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	serials    map[string]int // served serials seen by the loop's connection
	firstErr   error
	stop       chan struct{}
	done       chan struct{}
}

func startTraffic(t *testing.T, c *http.Client, url string) *trafficLoop {
	l := &trafficLoop{serials: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			resp, err := c.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			l.mu.Lock()
			if err != nil {
				l.failed.Add(1)
				if l.firstErr == nil {
					l.firstErr = err
				}
			} else {
				l.ok.Add(1)
				l.serials[resp.TLS.PeerCertificates[0].SerialNumber.String()]++
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { l.halt() })
	return l
}

func (l *trafficLoop) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func TestReloadMidTraffic(t *testing.T) {
	for _, mode := range replaceModes {
		t.Run(mode.name, func(t *testing.T) {
			ca := newCA(t, "test CA")
			dir := t.TempDir()
			v1 := ca.issue(t, leafSpec{dns: []string{"site.test"}})
			v2 := ca.issue(t, leafSpec{dns: []string{"site.test"}})
			cf := mode.setup(t, dir, v1)
			logs := &logRecorder{}
			src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}, ReloadDebounce: 20 * time.Millisecond},
				Deps{Logger: slog.New(logs)})
			srv := startServer(t, "127.0.0.1:0", src, true, echoHandler)
			addr := srv.Addr().String()
			if got := servedSerial(t, addr, ca); got.Cmp(v1.leaf.SerialNumber) != 0 {
				t.Fatalf("serving serial %s before the swap, want %s", got, v1.leaf.SerialNumber)
			}

			tr := &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: ca.pool, ServerName: "site.test"},
				ForceAttemptHTTP2: true,
				MaxConnsPerHost:   1,
			}
			defer tr.CloseIdleConnections()
			loop := startTraffic(t, &http.Client{Transport: tr, Timeout: 5 * time.Second}, "https://"+addr+"/")
			testwait.Until(t, 5*time.Second, "traffic to start", func() bool { return loop.ok.Load() >= 10 })

			mode.replace(t, dir, cf, v2)
			testwait.Until(t, 5*time.Second, "new handshakes to see the new certificate", func() bool {
				return servedSerial(t, addr, ca).Cmp(v2.leaf.SerialNumber) == 0
			})
			afterSwap := loop.ok.Load()
			testwait.Until(t, 5*time.Second, "traffic to go on after the swap", func() bool { return loop.ok.Load() >= afterSwap+20 })
			loop.halt()

			if n := loop.failed.Load(); n != 0 {
				t.Errorf("%d of %d requests failed; first: %v", n, n+loop.ok.Load(), loop.firstErr)
			}
			// The established connection kept its certificate all along.
			if len(loop.serials) != 1 || loop.serials[v1.leaf.SerialNumber.String()] == 0 {
				t.Errorf("the loop's connection saw serials %v, want only %s", loop.serials, v1.leaf.SerialNumber)
			}
			// QUIC shares the store: a new h3 connection sees v2 too.
			c := clientFor(t, "h3", &tls.Config{RootCAs: ca.pool, ServerName: "site.test"})
			resp, err := c.Get("https://" + addr + "/")
			if err != nil {
				t.Fatalf("h3 GET: %v", err)
			}
			resp.Body.Close()
			if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(v2.leaf.SerialNumber) != 0 {
				t.Errorf("h3 served serial %s, want %s", got, v2.leaf.SerialNumber)
			}
			if n := logs.count(slog.LevelInfo, "certificate reloaded"); n < 1 {
				t.Errorf("no reload logged")
			}
		})
	}
}

func TestReloadRefusesBadPair(t *testing.T) {
	ca := newCA(t, "test CA")
	otherKey := ca.issue(t, leafSpec{dns: []string{"other.test"}}).keyPEM
	tests := []struct {
		name      string
		cert, key func(good issued) []byte
		wantLog   string
	}{
		{name: "garbage certificate", cert: func(issued) []byte { return []byte("-----BEGIN CERTIFICATE-----\nnope\n") }, key: func(g issued) []byte { return g.keyPEM }},
		{name: "empty certificate", cert: func(issued) []byte { return nil }, key: func(g issued) []byte { return g.keyPEM }},
		{name: "key does not match", cert: func(g issued) []byte { return g.certPEM }, key: func(issued) []byte { return otherKey }},
		{name: "garbage key", cert: func(g issued) []byte { return g.certPEM }, key: func(issued) []byte { return []byte("junk") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			v1 := ca.issue(t, leafSpec{dns: []string{"site.test"}})
			v2 := ca.issue(t, leafSpec{dns: []string{"site.test"}})
			cf := writePair(t, dir, "site", v1)
			logs := &logRecorder{}
			src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}, ReloadDebounce: 20 * time.Millisecond},
				Deps{Logger: slog.New(logs)})
			srv := startServer(t, "127.0.0.1:0", src, false, echoHandler)
			addr := srv.Addr().String()

			renameOver(t, cf.CertFile, tt.cert(v2))
			renameOver(t, cf.KeyFile, tt.key(v2))
			testwait.Until(t, 5*time.Second, "the refusal to be logged", func() bool {
				return logs.count(slog.LevelError, "certificate reload refused") > 0
			})
			if got := servedSerial(t, addr, ca); got.Cmp(v1.leaf.SerialNumber) != 0 {
				t.Fatalf("serving serial %s after a bad pair, want the old %s", got, v1.leaf.SerialNumber)
			}
			if err := src.Reload(); err == nil {
				t.Error("Reload of a bad pair returned no error")
			}

			// A later good pair is picked up whatever happened before.
			renameOver(t, cf.KeyFile, v2.keyPEM)
			renameOver(t, cf.CertFile, v2.certPEM)
			testwait.Until(t, 5*time.Second, "the good pair to serve", func() bool {
				return servedSerial(t, addr, ca).Cmp(v2.leaf.SerialNumber) == 0
			})
		})
	}
}

func TestRunStopsOnClose(t *testing.T) {
	ca := newCA(t, "test CA")
	cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
	clock := &fakeClock{now: time.Now()}
	src, err := New(Options{Listener: "https", Certs: []CertFile{cf}}, Deps{Clock: clock, Logger: slog.New(&logRecorder{})})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- src.Run(context.Background()) }()
	testwait.Until(t, 5*time.Second, "Run to start its tickers", func() bool { return clock.liveTickers() == 2 })
	if err := src.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := clock.liveTickers(); n != 0 {
		t.Errorf("%d tickers left running", n)
	}
	if err := src.Run(context.Background()); err != nil { // returns at once after Close
		t.Errorf("Run after Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
