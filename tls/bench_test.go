package edgetls

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHandshake measures TLS handshakes per second over loopback with
// an ECDSA P-256 certificate through the Source's config: full handshakes,
// and resumed ones with a session ticket. Client and server run in this
// process, so on one core (taskset -c 1 ... -cpu 1) the figure is the cost
// of both ends together; the server alone does better.
func BenchmarkHandshake(b *testing.B) {
	ca := newCA(b, "bench CA")
	cf := writePair(b, b.TempDir(), "site", ca.issue(b, leafSpec{dns: []string{"site.test"}}))
	src := newSource(b, Options{Listener: "bench", Certs: []CertFile{cf}}, Deps{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	tln := tls.NewListener(ln, src.TLSConfig())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				// One byte after the handshake carries the session ticket
				// (TLS 1.3 sends it after the handshake) to the client.
				if _, err := c.Write([]byte{1}); err != nil {
					return
				}
				io.Copy(io.Discard, c)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })

	// Go's default key exchange is the hybrid X25519MLKEM768; the x25519
	// cases show what the post-quantum share costs.
	for _, tt := range []struct {
		name   string
		resume bool
		curves []tls.CurveID
	}{
		{name: "full", resume: false},
		{name: "resumed", resume: true},
		{name: "full/x25519", resume: false, curves: []tls.CurveID{tls.X25519}},
		{name: "resumed/x25519", resume: true, curves: []tls.CurveID{tls.X25519}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			cfg := &tls.Config{RootCAs: ca.pool, ServerName: "site.test", CurvePreferences: tt.curves}
			if tt.resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			handshake := func() bool {
				c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				var one [1]byte
				if _, err := io.ReadFull(c, one[:]); err != nil {
					b.Fatal(err)
				}
				return c.ConnectionState().DidResume
			}
			handshake() // warm the ticket cache
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime(b)
			resumed := 0
			for b.Loop() {
				if handshake() {
					resumed++
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
			b.ReportMetric(float64(b.N)/(cpuTime(b)-cpu0).Seconds(), "handshakes/cpu-s")
			if tt.resume && resumed != b.N {
				b.Fatalf("%d of %d handshakes resumed", resumed, b.N)
			}
			if !tt.resume && resumed != 0 {
				b.Fatalf("%d full handshakes resumed", resumed)
			}
		})
	}
}

// cpuTime is the process's user+system CPU time. Reporting work per
// CPU-second keeps the figure honest on a machine shared with other jobs,
// where wall-clock rates fall with the load.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRequests measures requests per second against a trivial handler
// over HTTP/1.1+TLS, HTTP/2 and HTTP/3 through a Server, with 8 concurrent
// clients on kept-alive connections.
func BenchmarkRequests(b *testing.B) {
	ca := newCA(b, "bench CA")
	cf := writePair(b, b.TempDir(), "site", ca.issue(b, leafSpec{dns: []string{"site.test"}}))
	src := newSource(b, Options{Listener: "bench", Certs: []CertFile{cf}}, Deps{})
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	srv := startServer(b, "127.0.0.1:0", src, true, hello)
	url := "https://" + srv.Addr().String() + "/"

	for _, proto := range []string{"h1", "h2", "h3"} {
		b.Run(proto, func(b *testing.B) {
			c := clientFor(b, proto, &tls.Config{RootCAs: ca.pool, ServerName: "site.test"})
			if tr, ok := c.Transport.(*http.Transport); ok {
				tr.MaxIdleConnsPerHost = 16
			}
			b.SetParallelism(8)
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			b.ReportMetric(float64(b.N)/(cpuTime(b)-cpu0).Seconds(), "req/cpu-s")
		})
	}
}
