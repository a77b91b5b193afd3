package edgetls

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/quic-go/quic-go"
	"golang.org/x/net/http2"
)

func TestStreamLimits(t *testing.T) {
	ca := newCA(t, "test CA")
	cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}}, Deps{})
	srv, err := Listen(ServerOptions{Addr: "127.0.0.1:0", Handler: echoHandler, TLS: src, HTTP3: true,
		H2MaxConcurrentStreams: 7, H3MaxIncomingStreams: 3})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})

	t.Run("h2 advertises max concurrent streams", func(t *testing.T) {
		conn, err := tls.Dial("tcp", srv.Addr().String(), &tls.Config{RootCAs: ca.pool, ServerName: "site.test", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("reading server settings: %v", err)
			}
			sf, ok := f.(*http2.SettingsFrame)
			if !ok || sf.IsAck() {
				continue
			}
			v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
			if !ok || v != 7 {
				t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d (sent %v), want 7", v, ok)
			}
			return
		}
	})

	t.Run("h3 caps incoming bidirectional streams", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := quic.DialAddr(ctx, srv.UDPAddr().String(), &tls.Config{RootCAs: ca.pool, ServerName: "site.test", NextProtos: []string{"h3"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseWithError(0, "")
		for i := range 3 {
			if _, err := conn.OpenStream(); err != nil {
				t.Fatalf("stream %d: %v", i+1, err)
			}
		}
		var limit *quic.StreamLimitReachedError
		if _, err := conn.OpenStream(); !errors.As(err, &limit) {
			t.Fatalf("fourth stream: %v, want the stream limit", err)
		}
	})
}

func TestMaxConnections(t *testing.T) {
	ca := newCA(t, "test CA")
	cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}}, Deps{})
	srv, err := Listen(ServerOptions{Addr: "127.0.0.1:0", Handler: echoHandler, TLS: src, MaxConnections: 1})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "site.test"}

	first, err := tls.Dial("tcp", srv.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The second connection waits in the accept queue: no handshake.
	second, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	tc := tls.Client(second, cfg)
	second.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if err := tc.Handshake(); err == nil {
		t.Fatal("second connection was served beyond MaxConnections 1")
	}
	second.Close() // else its half-done handshake holds the slot next
	first.Close()
	testwait.Until(t, 5*time.Second, "a connection after the first closed", func() bool {
		c, err := tls.Dial("tcp", srv.Addr().String(), cfg)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}
