package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkProxyGET measures one small GET through the whole request path in
// process: the client's request (no network) through routing, balancing,
// the attempt loop and a keep-alive connection to a real loopback backend.
// Allocations include net/http's own on both proxy sides.
func BenchmarkProxyGET(b *testing.B) {
	for _, withMetrics := range []bool{false, true} {
		name := "bare"
		if withMetrics {
			name = "metrics+accesslog"
		}
		b.Run(name, func(b *testing.B) {
			addr := rawBackend(b)
			bp := balancer.NewPool("app", balancer.Options{})
			bp.Update([]balancer.Spec{{Address: addr, Zone: "a"}})
			tr := NewTransport(TransportOptions{Connect: time.Second})
			defer tr.CloseIdleConnections()
			o := Options{}
			if withMetrics {
				o.Metrics = NewMetrics(prometheus.NewRegistry())
				o.AccessLog = NewJSONAccessLog(io.Discard, 1)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := NewServer(ctx, o)
			g, err := s.Build(Config{
				Listeners: []ListenerConfig{{Name: "http", Routes: []Route{{Pool: "app"}}}},
				Pools: []PoolConfig{{Name: "app", Balancer: bp, Transport: tr,
					Timeouts: Timeouts{Connect: time.Second, PerTry: time.Second, Request: 5 * time.Second},
					Retry:    RetryPolicy{Attempts: 3, On: causes(CauseConnect, CauseTimeout), MaxBody: 64 << 10, BudgetPercent: 20, BudgetMinPerSecond: 1, BudgetWindow: 10 * time.Second}}},
			})
			if err != nil {
				b.Fatal(err)
			}
			s.Publish(g)
			h := s.Handler("http")
			req := httptest.NewRequest("GET", "http://app.example.com/hello", nil)
			req.RemoteAddr = "127.0.0.1:5555"
			b.ReportAllocs()
			for b.Loop() {
				w := discardWriter{h: http.Header{}}
				h.ServeHTTP(&w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// rawBackend is a keep-alive HTTP/1.1 backend that answers every request
// with a canned response without parsing it beyond its end, so the
// benchmark counts the proxy's allocations, not a backend server's.
func rawBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					// A GET without a body ends at the blank line.
					for {
						line, err := r.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// discardWriter is a minimal ResponseWriter for the in-process benchmark.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(c int)   { w.code = c }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}
