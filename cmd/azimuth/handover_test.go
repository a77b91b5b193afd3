package main

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// Rebinds (a reload that changes a listener's settings) and binary
// upgrades under clients that keep their connections alive and send their
// next request at a random moment, POSTs without an idempotency key
// included: no request is lost and none reaches the backend twice. A
// rebind moves each HTTP/1.1 connection to the new server, idle ones at
// once and busy ones after their response; an upgrade's old process
// answers a connection's next request with Connection: close before it
// closes it. The clients never resend anything, so any request the proxy
// drops shows.
func TestRebindsAndUpgradesLoseNothing(t *testing.T) {
	const (
		rebinds  = 1000
		upgrades = 20
		workers  = 6 // per listener
	)
	be := startHandoverBackend(t)
	ca := tlsproxyNewCA(t, "handover CA")
	dir := t.TempDir()
	tlsproxyWriteLeaf(t, ca, dir)
	plainAddr := fmt.Sprintf("127.0.0.1:%d", reloadFreePort(t))
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", reloadFreePort(t))
	config := func(i int) string {
		// The config a user writes, with only the idle timeout changing:
		// each change binds both listeners anew on their sockets.
		idle := fmt.Sprintf("limits: { idle_timeout: %ds }", 60+i)
		return "zone: zone-a\nadmin: { address: 127.0.0.1:0 }\n" +
			"log: { access_log: { output: \"off\" } }\n" +
			"shutdown: { drain_delay: 50ms, grace: 10s }\n" +
			"listeners:\n" +
			"  - name: web\n    address: " + plainAddr + "\n    " + idle + "\n    routes: [ { pool: web } ]\n" +
			"  - name: web-tls\n    address: " + tlsAddr + "\n    " + idle + "\n" +
			"    tls: { certificates: [ { cert_file: a.pem, key_file: a-key.pem } ] }\n" +
			"    routes: [ { pool: web } ]\n" +
			"pools:\n  - name: web\n    backends:\n      - { address: " + be.addr + ", zone: zone-a }\n"
	}
	path := filepath.Join(dir, "azimuth.yaml")
	tlsproxyWriteFile(t, dir, "azimuth.yaml", []byte(config(0)))
	proc, admin := reloadStart(t, path)

	clientTLS := &tls.Config{RootCAs: ca.pool, ServerName: "a.test", NextProtos: []string{"http/1.1"}}
	load := startHandoverLoad(plainAddr, tlsAddr, clientTLS, workers)
	defer load.stop()
	testwait.Until(t, 10*time.Second, "the clients are served", func() bool { return load.ok.Load() > 200 })

	applied := func(admin string, i int) func() bool {
		sum := sha256.Sum256([]byte(config(i)))
		want := hex.EncodeToString(sum[:])
		return func() bool { return reloadGetStatus(t, admin).Config.Hash == want }
	}
	perUpgrade := rebinds / upgrades
	for i := 1; i <= rebinds; i++ {
		tlsproxyWriteFile(t, dir, "azimuth.yaml", []byte(config(i)))
		if err := proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, 10*time.Second, fmt.Sprintf("rebind %d applied", i), applied(admin, i))
		if i%perUpgrade != 0 {
			continue
		}
		// A binary upgrade: the new process binds the same ports, and the
		// old one, told to stop once the new one is ready, drains.
		next, nextAdmin := reloadStart(t, path)
		testwait.Until(t, 10*time.Second, "the new process is ready", func() bool {
			return drainReadyz(nextAdmin) == http.StatusOK
		})
		before := load.ok.Load()
		if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := proc.exitCode(t); code != 0 {
			t.Fatalf("upgrade %d: the old process exited %d", i/perUpgrade, code)
		}
		proc, admin = next, nextAdmin
		testwait.Until(t, 10*time.Second, "the clients are served after the upgrade", func() bool {
			return load.ok.Load() > before+int64(2*workers)
		})
	}
	load.stop()

	if n := load.lost.Load(); n > 0 {
		t.Errorf("%d of %d requests lost; first: %s", n, load.sent.Load(), load.firstLoss())
	}
	if load.ok.Load() != load.sent.Load()-load.lost.Load() {
		t.Errorf("%d requests sent, %d answered, %d lost", load.sent.Load(), load.ok.Load(), load.lost.Load())
	}
	seen, dups := be.tally()
	if dups != "" {
		t.Errorf("requests the backend saw twice: %s", dups)
	}
	if seen != load.ok.Load() {
		t.Errorf("the backend saw %d requests, the clients had %d answers", seen, load.ok.Load())
	}
	if load.posts.Load() == 0 || load.reconnects.Load() < int64(upgrades) {
		t.Errorf("%d POSTs, %d reconnects: the load did not exercise what it should", load.posts.Load(), load.reconnects.Load())
	}
	t.Logf("%d rebinds, %d upgrades: %d requests (%d POSTs) answered, %d lost, %d connections closed by the proxy with Connection: close",
		rebinds, upgrades, load.ok.Load(), load.posts.Load(), load.lost.Load(), load.reconnects.Load())
}

// handoverBackend counts each request by its X-Test-Id, so a request that
// reaches it twice shows.
type handoverBackend struct {
	addr string
	mu   sync.Mutex
	seen map[string]int
}

func startHandoverBackend(t *testing.T) *handoverBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &handoverBackend{addr: ln.Addr().String(), seen: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		id := r.Header.Get("X-Test-Id")
		if err != nil || r.Method == http.MethodPost && string(body) != id {
			http.Error(w, "body not whole", http.StatusBadRequest)
			return
		}
		if id != "" {
			b.mu.Lock()
			b.seen[id]++
			b.mu.Unlock()
		}
		_, _ = io.WriteString(w, id)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return b
}

// tally returns how many test requests the backend saw and the ids it saw
// more than once.
func (b *handoverBackend) tally() (int64, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	var dups []string
	for id, c := range b.seen {
		n += int64(c)
		if c > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", id, c))
		}
	}
	return n, strings.Join(dups, " ")
}

// handoverLoad is the clients: each worker keeps one HTTP/1.1 connection
// alive, sends a request (every third a POST), waits a random moment up
// to 30ms, and opens a new connection only when the proxy closed the old
// one with Connection: close. It never sends a request twice.
type handoverLoad struct {
	ok, lost, sent, posts, reconnects atomic.Int64
	stopping                          chan struct{}
	wg                                sync.WaitGroup
	once                              sync.Once
	mu                                sync.Mutex
	first                             string
}

func startHandoverLoad(plainAddr, tlsAddr string, clientTLS *tls.Config, workers int) *handoverLoad {
	l := &handoverLoad{stopping: make(chan struct{})}
	for w := range 2 * workers {
		c := &handoverConn{addr: plainAddr}
		if w%2 == 1 {
			c.addr, c.tls = tlsAddr, clientTLS
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.close()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			// Bounded: the test stops the load well before this.
			for n := 0; n < 1_000_000; n++ {
				select {
				case <-l.stopping:
					return
				case <-time.After(time.Duration(rnd.IntN(30_000)) * time.Microsecond):
				}
				method := http.MethodGet
				if n%3 == 2 {
					method = http.MethodPost
					l.posts.Add(1)
				}
				l.sent.Add(1)
				closed, err := c.do(method, fmt.Sprintf("w%d-%d", w, n))
				if err != nil {
					l.lost.Add(1)
					l.mu.Lock()
					if l.first == "" {
						l.first = fmt.Sprintf("%s on %s at %s: %v", method, c.addr, time.Now().Format("15:04:05.000"), err)
					}
					l.mu.Unlock()
					c.close()
					continue
				}
				l.ok.Add(1)
				if closed {
					l.reconnects.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *handoverLoad) stop() {
	l.once.Do(func() { close(l.stopping) })
	l.wg.Wait()
}

func (l *handoverLoad) firstLoss() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// handoverConn is one client connection, opened when a request needs it.
type handoverConn struct {
	addr string
	tls  *tls.Config
	conn net.Conn
	br   *bufio.Reader
	reqs int // requests sent on conn
}

// do sends one request and reads its whole answer. It reports whether the
// proxy closed the connection after it.
func (c *handoverConn) do(method, id string) (closed bool, err error) {
	if c.conn == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		if c.tls != nil {
			c.conn, err = (&tls.Dialer{NetDialer: &d, Config: c.tls}).Dial("tcp", c.addr)
		} else {
			c.conn, err = d.Dial("tcp", c.addr)
		}
		if err != nil {
			return false, fmt.Errorf("dial: %w", err)
		}
		c.br = bufio.NewReader(c.conn)
		c.reqs = 0
	}
	c.reqs++
	defer func() {
		if err != nil {
			err = fmt.Errorf("request %d on its connection: %w", c.reqs, err)
		}
	}()
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " /k HTTP/1.1\r\nHost: a.test\r\nX-Test-Id: " + id + "\r\n"
	if method == http.MethodPost {
		req += "Content-Length: " + strconv.Itoa(len(id)) + "\r\n\r\n" + id
	} else {
		req += "\r\n"
	}
	if _, err := io.WriteString(c.conn, req); err != nil {
		return false, fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return false, fmt.Errorf("read: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("body: %w", err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != id {
		return false, fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	if resp.Close {
		c.close()
		return true, nil
	}
	return false, nil
}

func (c *handoverConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
