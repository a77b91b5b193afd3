package proxy

import (
	"context"
	"io"
	"log/slog"
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
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "5")
				_, _ = io.WriteString(w, "hello")
			}))
			defer backend.Close()
			bp := balancer.NewPool("app", balancer.Options{})
			bp.Update([]balancer.Spec{{Address: backend.Listener.Addr().String(), Zone: "a"}})
			tr := NewTransport(TransportOptions{Connect: time.Second})
			defer tr.CloseIdleConnections()
			o := Options{}
			if withMetrics {
				o.Metrics = NewMetrics(prometheus.NewRegistry())
				o.AccessLog = NewAccessLog(slog.New(slog.NewJSONHandler(io.Discard, nil)), 1)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := NewServer(ctx, o)
			g, err := s.Build(Config{
				Listeners: []ListenerConfig{{Name: "http", Routes: []Route{{Pool: "app"}}}},
				Pools: []PoolConfig{{Name: "app", Balancer: bp, Transport: tr,
					Timeouts: Timeouts{Connect: time.Second, PerTry: time.Second, Request: 5 * time.Second},
					Retry:    RetryPolicy{Attempts: 3, On: causes(CauseConnect, CauseTimeout), MaxBody: 64 << 10, BudgetPercent: 20, BudgetMin: 3}}},
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
