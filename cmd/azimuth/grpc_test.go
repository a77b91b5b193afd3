package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/azimuthproxy/azimuth/internal/grpctest"
)

// A real gRPC bidirectional stream through the binary's TLS listener
// (HTTP/2 by ALPN) to an h2c pool, with the pool's defaults: each message
// must reach the backend while the call runs, so the request body streams
// instead of being held for replay (a POST is never replayed).
func TestGRPCBidiStreamThroughTLSListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	grpctest.Register(gs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	dir := t.TempDir()
	ca := tlsproxyNewCA(t, "edge CA")
	tlsproxyWriteLeaf(t, ca, dir)
	path := filepath.Join(dir, "azimuth.yaml")
	reloadWrite(t, path, fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { access_log: { output: "off" } }
shutdown: { drain_delay: 50ms, grace: 2s }
listeners:
  - name: https
    address: 127.0.0.1:0
    tls: { certificates: [ { cert_file: a.pem, key_file: a-key.pem } ] }
    routes: [ { pool: grpc } ]
pools:
  - name: grpc
    protocol: h2c
    backends: [ { address: %s, zone: zone-a } ]
`, ln.Addr()))
	_, admin := reloadStart(t, path)
	addr := reloadListenerAddr(t, admin, "https")

	creds := credentials.NewTLS(&tls.Config{RootCAs: ca.pool, ServerName: "a.test"})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := grpctest.PingPong(ctx, conn, 20); err != nil {
		t.Fatalf("bidirectional stream through the TLS listener: %v", err)
	}
}
