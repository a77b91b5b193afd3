package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/grpctest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// singleBackendPool is a pool with one backend at addr.
func singleBackendPool(addr, protocol string) PoolConfig {
	bp := balancer.NewPool("app", balancer.Options{})
	bp.Update([]balancer.Spec{{Address: addr, Zone: "a"}})
	return PoolConfig{
		Name:      "app",
		Balancer:  bp,
		Transport: NewTransport(TransportOptions{Protocol: protocol, Connect: time.Second}),
		Timeouts:  Timeouts{Connect: time.Second, PerTry: 2 * time.Second, Request: 5 * time.Second},
		Retry:     RetryPolicy{Attempts: 2, On: causes(CauseConnect), MaxBody: 1 << 10, BudgetPercent: 20, BudgetMinPerSecond: 1, BudgetWindow: 10 * time.Second},
	}
}

// Server-sent events reach the client as they are written, not when the
// response ends.
func TestServerSentEventsFlushAtOnce(t *testing.T) {
	second := make(chan struct{})
	b := startBackend(t, "127.0.1.1", "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-second:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: two\n\n")
	}))
	px := startProxy(t, singleBackendPool(b.addr, "http1"))
	resp, err := http.Get(px.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event = %q, %v; want it before the stream ends", line, err)
	}
	close(second)
	rest, _ := io.ReadAll(rd)
	if !strings.Contains(string(rest), "data: two") {
		t.Fatalf("second event missing: %q", rest)
	}
}

// A WebSocket is tunnelled through the proxy both ways.
func TestWebSocketEcho(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(c, &msg) != nil || websocket.Message.Send(c, msg) != nil {
				return
			}
		}
	}))
	pc := singleBackendPool(b.addr, "http1")
	px := startProxy(t, pc)
	wsURL := "ws" + strings.TrimPrefix(px.URL, "http") + "/echo"
	c, err := websocket.Dial(wsURL, "", px.URL)
	if err != nil {
		t.Fatalf("dialing websocket through the proxy: %v", err)
	}
	for _, msg := range []string{"hello", "zone-aware", strings.Repeat("x", 5000)} {
		if err := websocket.Message.Send(c, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(c, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo = %.20q..., want %.20q...", got, msg)
		}
	}
	if n := pc.Balancer.Backends()[0].InFlight(); n != 1 {
		t.Errorf("open websocket counts %d in flight, want 1", n)
	}
	c.Close()
	testwait.Until(t, 3*time.Second, "the closed websocket to leave the backend's in-flight count", func() bool {
		return pc.Balancer.Backends()[0].InFlight() == 0
	})
}

// gRPC unary and server-streaming calls pass through the proxy over h2c,
// trailers included.
func TestGRPCOverH2C(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	px := startProxy(t, singleBackendPool(ln.Addr().String(), "h2c"))
	conn, err := grpc.NewClient(strings.TrimPrefix(px.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil {
		t.Fatalf("unary call through the proxy: %v", err)
	}
	if res.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary status = %v", res.Status)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); err == nil ||
		!strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("unary error status from trailers = %v, want NotFound", err)
	}

	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first streamed message = %v, %v", first, err)
	}
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	next, err := stream.Recv()
	if err != nil || next.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second streamed message = %v, %v", next, err)
	}
}

// A gRPC bidirectional stream passes through over h2c: a message the
// client sends reaches the backend while the call runs, since a request
// that cannot be replayed streams its body instead of buffering it.
func TestGRPCBidiStreamOverH2C(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	grpctest.Register(gs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	px := startProxy(t, singleBackendPool(ln.Addr().String(), "h2c"))
	conn, err := grpc.NewClient(strings.TrimPrefix(px.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := grpctest.PingPong(ctx, conn, 20); err != nil {
		t.Fatalf("bidirectional stream through the proxy: %v", err)
	}
}
