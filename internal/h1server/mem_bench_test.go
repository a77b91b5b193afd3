package h1server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/sockio"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// memConns is how many client connections BenchmarkConnMemory holds: the
// count of the peer harness's peak RSS run.
const memConns = 1000

// BenchmarkConnMemory reports what the server holds per client connection
// with memConns of them open on a socket as the proxy's listeners make it
// (sockio): idle ones, each answered once and waiting for its next
// request, and busy ones, each with a request whose handler waits (and,
// since watchAfter, the watch of its client). heap-B/conn and stack-B/conn are the growth of the heap in
// use and of the goroutine stacks over the server with no connection,
// after a collection, divided by the connections; the heap figure counts
// the client ends' sockets too (a few hundred bytes each).
//
//	go test -run '^$' -bench ConnMemory -benchtime 3x ./internal/h1server
func BenchmarkConnMemory(b *testing.B) {
	b.Run("idle", func(b *testing.B) { benchmarkConnMemory(b, false) })
	b.Run("busy", func(b *testing.B) { benchmarkConnMemory(b, true) })
}

func benchmarkConnMemory(b *testing.B, busy bool) {
	var heap, stack float64
	for range b.N {
		h, s := connMemory(b, busy)
		heap += h
		stack += s
	}
	b.ReportMetric(heap/float64(b.N), "heap-B/conn")
	b.ReportMetric(stack/float64(b.N), "stack-B/conn")
	b.ReportMetric((heap+stack)/float64(b.N), "B/conn")
}

// connMemory opens memConns connections to a new server, idle or busy,
// and returns the heap and stack bytes per connection they cost it.
func connMemory(b *testing.B, busy bool) (heap, stack float64) {
	var inHandler sync.WaitGroup
	release := make(chan struct{})
	s := New(Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if busy {
			inHandler.Done()
			<-release
		}
		_, _ = io.WriteString(w, "hello")
	})})
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()
	go func() { _ = s.Serve(sockio.Listener{TCPListener: ln}) }()
	defer func() {
		_ = s.Close()
		testwait.Until(b, 10*time.Second, "the server's goroutines to end", func() bool {
			return runtime.NumGoroutine() <= goroutines
		})
	}()

	before := memInUse()
	const req = "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\n\r\n"
	clients := make([]net.Conn, 0, memConns)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	releaseAll := sync.OnceFunc(func() { close(release) })
	defer releaseAll() // runs first: a handler left waiting would keep the server's goroutines
	var resp [256]byte
	for range memConns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		if busy {
			inHandler.Add(1)
		}
		if _, err := io.WriteString(c, req); err != nil {
			b.Fatal(err)
		}
		if !busy {
			if _, err := c.Read(resp[:]); err != nil { // the whole response, 100-odd bytes
				b.Fatal(err)
			}
		}
	}
	if busy {
		inHandler.Wait()
	} else {
		testwait.Until(b, 10*time.Second, "every connection to wait for its next request", func() bool {
			return parkedConns(s) == memConns
		})
	}
	after := memInUse()
	if busy {
		releaseAll()
		for _, c := range clients {
			if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	return float64(after.heap-before.heap) / memConns, float64(after.stack-before.stack) / memConns
}

// parkedConns returns how many connections of s wait for their next
// request.
func parkedConns(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	parked := 0
	for c := range s.conns {
		c.parkMu.Lock()
		if c.parked {
			parked++
		}
		c.parkMu.Unlock()
	}
	return parked
}

type memUse struct{ heap, stack int64 }

// memInUse returns the heap and stack bytes in use after two
// collections: the second empties the pools of what the first left there.
func memInUse() memUse {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memUse{int64(m.HeapInuse), int64(m.StackInuse)}
}
