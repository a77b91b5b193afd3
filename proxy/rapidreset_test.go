package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// An HTTP/2 client that opens streams and resets them at once (CVE-2023-
// 44487, "rapid reset") never gets more requests running at the backend
// than the listener's stream limit: net/http runs at most that many
// handlers per connection and queues the rest, and a queue over four times
// the limit ends the connection with ENHANCE_YOUR_CALM. Everything the
// connection started ends with it.
func TestHTTP2RapidResetBounded(t *testing.T) {
	const limit, streams = 8, 2000
	var inflight, peak, seen atomic.Int64
	addr := serveRaw(t, "127.0.1.1", func(c net.Conn) {
		// One request per connection, never answered until the proxy
		// gives up on it.
		if _, err := readHead(bufio.NewReader(c)); err != nil {
			return
		}
		seen.Add(1)
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		_, _ = io.Copy(io.Discard, c)
	})
	lim := defaultEdgeLimits
	lim.H2MaxConcurrentStreams = limit
	pc := singleBackendPool(addr, "http1")
	edge := startEdge(t, lim, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, pc)
	baseline := runtime.NumGoroutine()

	c, err := net.Dial("tcp", edge)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// Read the server's frames while writing, so neither side blocks.
	var goaway *http2.GoAwayFrame
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway = g
			}
		}
	}()
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	sent := 0
	for i := range streams {
		id := uint32(2*i + 1)
		hbuf.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "app.example"}, {":path", "/r/" + strconv.Itoa(i)}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			break // the server hung up
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
	}
	// The server closes the connection (GOAWAY) or, having kept up, goes
	// idle; either way closing our side ends the reader.
	_ = c.(*net.TCPConn).CloseWrite()
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Errorf("%d requests ran at the backend at once, limit %d", p, limit)
	}
	if goaway != nil && goaway.ErrCode != http2.ErrCodeEnhanceYourCalm && goaway.ErrCode != http2.ErrCodeNo {
		t.Errorf("GOAWAY %v", goaway.ErrCode)
	}
	t.Logf("sent %d of %d streams; backend saw %d requests, at most %d at once; goaway %v", sent, streams, seen.Load(), peak.Load(), goaway != nil)
	testwait.Until(t, 5*time.Second, "backend requests to end", func() bool { return inflight.Load() == 0 })
	c.Close()
	// Dials that finished after their stream was reset wait in the
	// transport's idle pool, as they should; the pool's own close ends them.
	pc.Transport.(Transport).CloseIdleConnections()
	checkNoLeak(t, baseline)
}
