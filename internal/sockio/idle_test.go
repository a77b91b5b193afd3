package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// countedBuffers hands out 8-byte buffers and counts those not given back.
type countedBuffers struct {
	taken, out atomic.Int32
}

func (b *countedBuffers) take() []byte {
	b.taken.Add(1)
	b.out.Add(1)
	return make([]byte, 8)
}

func (b *countedBuffers) give([]byte) { b.out.Add(-1) }

func TestIdleReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap bool
	}{
		{"sockio.Conn", true},
		{"net.TCPConn", false},
	} {
		t.Run(tc.name, func(t *testing.T) { testIdleReader(t, tc.wrap) })
	}
}

func testIdleReader(t *testing.T, wrap bool) {
	c, peer := pair(t, wrap)
	var bufs countedBuffers
	r, err := NewIdleReader(c, bufs.take, bufs.give)
	if err != nil || r == nil {
		t.Fatalf("NewIdleReader = %v, %v; want an IdleReader for a socket", r, err)
	}

	// Waiting, it holds no buffer; bytes sent end the wait, read.
	type result struct {
		got string
		err error
	}
	done := make(chan result, 1)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() {
		buf, n, err := r.Read()
		done <- result{string(buf[:n]), err}
		if buf != nil {
			bufs.give(buf)
		}
	}()
	testwait.Until(t, 5*time.Second, "the read to try, and wait holding no buffer", func() bool {
		return bufs.taken.Load() > 0 && bufs.out.Load() == 0
	})
	if _, err := peer.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.err != nil || res.got != "abc" {
		t.Fatalf("bytes sent: Read = %q, %v; want abc", res.got, res.err)
	}

	// Bytes waiting already are read at once, as many as the buffer
	// holds; the rest stays for the connection's reads.
	const sent = "more than eight"
	if _, err := peer.Write([]byte(sent)); err != nil {
		t.Fatal(err)
	}
	buf, n, err := r.Read()
	if err != nil || n == 0 || string(buf[:n]) != sent[:n] {
		t.Fatalf("bytes sent: Read = %q, %v; want the first of %q", buf[:n], err, sent)
	}
	bufs.give(buf)
	rest := make([]byte, len(sent)-n)
	if _, err := io.ReadFull(c, rest); err != nil || string(rest) != sent[n:] {
		t.Fatalf("after Read, the connection read %q, %v; want %q", rest, err, sent[n:])
	}

	// The wait ends at the read deadline, as a read's does.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	buf, _, err = r.Read()
	var oe *net.OpError
	if buf != nil || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("nothing sent, deadline passed: Read = %q, %v; want no buffer and the deadline's error, as a read's", buf, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	peer.Close()
	if buf, _, err := r.Read(); buf != nil || err != io.EOF {
		t.Fatalf("peer closed: Read = %q, %v; want no buffer and io.EOF", buf, err)
	}
	if out := bufs.out.Load(); out != 0 {
		t.Fatalf("%d buffers not given back", out)
	}
	if r, err := NewIdleReader(struct{ net.Conn }{c}, bufs.take, bufs.give); r != nil || err != nil {
		t.Fatalf("NewIdleReader of a connection without a socket = %v, %v; want nil, nil", r, err)
	}
}
