package sockio

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// pair returns the two ends of a loopback TCP connection, both wrapped
// when wrap is set.
func pair(t *testing.T, wrap bool) (client, server net.Conn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var l net.Listener = ln
	if wrap {
		l = Listener{ln}
	}
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		ch <- accepted{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	if wrap {
		client = Wrap(client)
		for _, c := range []net.Conn{client, a.c} {
			if _, ok := c.(*Conn); !ok {
				t.Fatalf("got %T, want *sockio.Conn", c)
			}
		}
	}
	t.Cleanup(func() { client.Close(); a.c.Close() })
	return client, a.c
}

func TestWrapLeavesOtherConnectionsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe end) = %T, want the same connection", got)
	}
}

// TestFullDuplex moves 8 MiB each way at once, in writes and reads of
// random sizes: far more than the socket buffers hold, so writes meet
// EAGAIN and wait for the poller, and reads come back short.
func TestFullDuplex(t *testing.T) {
	client, server := pair(t, true)
	const size = 8 << 20
	send := func(c net.Conn, seed uint64) (sum [32]byte, err error) {
		rng := rand.New(rand.NewPCG(seed, 1))
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for off := 0; off < size; {
			n := min(1+rng.IntN(256<<10), size-off)
			w, err := c.Write(data[off : off+n])
			if err != nil || w != n {
				return sum, fmt.Errorf("write of %d at %d: wrote %d, %v", n, off, w, err)
			}
			off += n
		}
		return sha256.Sum256(data), nil
	}
	recv := func(c net.Conn) (sum [32]byte, err error) {
		h := sha256.New()
		buf := make([]byte, 100<<10)
		for got := 0; got < size; {
			n, err := c.Read(buf[:min(len(buf), size-got)])
			if err != nil {
				return sum, fmt.Errorf("read at %d: %v", got, err)
			}
			h.Write(buf[:n])
			got += n
		}
		copy(sum[:], h.Sum(nil))
		return sum, nil
	}
	var wg sync.WaitGroup
	var sent, got [2][32]byte
	var errs [4]error
	for i, c := range []net.Conn{client, server} {
		wg.Add(2)
		go func() { defer wg.Done(); sent[i], errs[i] = send(c, uint64(i)) }()
		go func() { defer wg.Done(); got[1-i], errs[2+i] = recv(c) }()
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	if sent != got {
		t.Fatal("the bytes read differ from the bytes written")
	}
}

// describe is what a caller can tell about a Read or Write's result.
func describe(n int, err error) string {
	if err == nil {
		return fmt.Sprintf("n=%d, no error", n)
	}
	if err == io.EOF {
		return fmt.Sprintf("n=%d, io.EOF", n)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		return fmt.Sprintf("n=%d, %T %v", n, err, err)
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	var errno syscall.Errno
	errors.As(err, &errno)
	return fmt.Sprintf("n>0=%v op=%s net=%s source=%v addr=%v inner=%T errno=%d timeout=%v deadline=%v closed=%v",
		n > 0, oe.Op, oe.Net, oe.Source != nil, oe.Addr != nil, oe.Err, errno, timeout,
		errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed))
}

// TestSameResultsAsNet plays each case on a net.TCPConn and on a Conn and
// wants the same result from both: callers check errors with errors.Is,
// net.Error and the OpError's fields, and must not tell them apart.
func TestSameResultsAsNet(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, c, peer net.Conn) string
	}{
		{"empty read", func(t *testing.T, c, peer net.Conn) string {
			return describe(c.Read(nil))
		}},
		{"read of waiting bytes", func(t *testing.T, c, peer net.Conn) string {
			if _, err := peer.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			n, err := io.ReadAtLeast(c, buf, 5)
			return describe(n, err) + " " + string(buf[:n])
		}},
		{"peer closed", func(t *testing.T, c, peer net.Conn) string {
			peer.Close()
			return describe(c.Read(make([]byte, 8)))
		}},
		{"peer reset", func(t *testing.T, c, peer net.Conn) string {
			_ = peer.(interface{ SetLinger(int) error }).SetLinger(0)
			peer.Close()
			time.Sleep(10 * time.Millisecond) // the RST arrives
			return describe(c.Read(make([]byte, 8)))
		}},
		{"read deadline passed", func(t *testing.T, c, peer net.Conn) string {
			_ = c.SetReadDeadline(time.Now().Add(-time.Second))
			return describe(c.Read(make([]byte, 8)))
		}},
		{"read deadline while waiting", func(t *testing.T, c, peer net.Conn) string {
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			return describe(c.Read(make([]byte, 8)))
		}},
		{"closed while reading", func(t *testing.T, c, peer net.Conn) string {
			time.AfterFunc(20*time.Millisecond, func() { c.Close() })
			return describe(c.Read(make([]byte, 8)))
		}},
		{"read after close", func(t *testing.T, c, peer net.Conn) string {
			c.Close()
			return describe(c.Read(make([]byte, 8)))
		}},
		{"write after close", func(t *testing.T, c, peer net.Conn) string {
			c.Close()
			return describe(c.Write([]byte("x")))
		}},
		{"empty write", func(t *testing.T, c, peer net.Conn) string {
			return describe(c.Write(nil))
		}},
		{"write to a reset peer", func(t *testing.T, c, peer net.Conn) string {
			_ = peer.(interface{ SetLinger(int) error }).SetLinger(0)
			peer.Close()
			time.Sleep(10 * time.Millisecond)
			var n int
			var err error
			for range 100 { // the first writes may land before the RST is seen
				if n, err = c.Write([]byte("x")); err != nil {
					break
				}
			}
			return describe(0, err) + fmt.Sprintf(" last n=%d", n)
		}},
		{"write deadline with the peer not reading", func(t *testing.T, c, peer net.Conn) string {
			buf := make([]byte, 64<<20) // more than the socket buffers take
			_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			return describe(c.Write(buf))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := pair(t, false)
			want := tc.run(t, c, peer)
			c, peer = pair(t, true)
			peer = peer.(*Conn).TCPConn // the peer as net would have it
			if got := tc.run(t, c, peer); got != want {
				t.Errorf("\ngot  %s\nwant %s (net.TCPConn)", got, want)
			}
		})
	}
}

// TestConcurrentReads: net.Conn allows Reads from two goroutines at once;
// every byte reaches exactly one of them.
func TestConcurrentReads(t *testing.T) {
	c, peer := pair(t, true)
	const total = 1 << 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	read := 0
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1000)
			for {
				n, err := c.Read(buf)
				mu.Lock()
				read += n
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	if _, err := peer.Write(bytes.Repeat([]byte("z"), total)); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	wg.Wait()
	if read != total {
		t.Fatalf("read %d bytes, want %d", read, total)
	}
}

func TestPeeker(t *testing.T) {
	c, peer := pair(t, true)
	p, err := NewPeeker(c)
	if err != nil || p == nil {
		t.Fatalf("NewPeeker = %v, %v; want a Peeker for a socket", p, err)
	}
	if b, err := p.Look(false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("nothing sent: Look = %q, %v; want EAGAIN", b, err)
	}
	// A waiting look returns once bytes arrive.
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = peer.Write([]byte("ab"))
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := p.Look(true); err != nil || len(b) == 0 || string(b) != "ab"[:len(b)] {
		t.Fatalf("bytes sent: Look(wait) = %q, %v; want them", b, err)
	}
	testwait.Until(t, 5*time.Second, "bytes sent: Look = ab", func() bool {
		b, err := p.Look(false)
		return string(b) == "ab" && err == nil
	})
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ab" {
		t.Fatalf("after Look, Read got %q, %v; want the bytes unconsumed", buf, err)
	}
	// A waiting look ends at the read deadline, as a read does.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if b, err := p.Look(true); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("nothing sent, deadline passed: Look(wait) = %q, %v; want the deadline's error", b, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	peer.Close()
	testwait.Until(t, 5*time.Second, "peer closed: Look = io.EOF", func() bool {
		_, err := p.Look(false)
		return err == io.EOF
	})
	if p, err := NewPeeker(struct{ net.Conn }{c}); p != nil || err != nil {
		t.Fatalf("NewPeeker of a connection without a socket = %v, %v; want nil, nil", p, err)
	}
}
