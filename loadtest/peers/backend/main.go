// Command backend is the fleet the peer comparison puts behind every proxy:
// one process answering on several loopback addresses with a fixed body, so
// each proxy meets the same fast, equal backends and the backend's own cost
// is measured once, straight, as the limit.
//
//	backend -addrs 127.0.1.1:28080,127.0.1.2:28080 [-tls ADDR -cert F -key F] [-size 100]
//	backend -syslog PATH
//
// It answers every path with 200 and -size bytes, and names itself in
// X-Backend so a load tester can see how a proxy spreads requests. The TLS
// listener (h1 and h2 by ALPN) exists only for the direct "limit" row.
//
// With -syslog it is instead a syslog daemon's socket that takes and
// drops every datagram (HAProxy's log lines, in the rows where each proxy
// logs as it ships), and says how many it took when it stops.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	addrs := fs.String("addrs", "", "comma-separated host:port list to serve plain HTTP on")
	tlsAddr := fs.String("tls", "", "host:port to also serve TLS (h1, h2) on; needs -cert and -key")
	cert := fs.String("cert", "", "PEM certificate for -tls")
	key := fs.String("key", "", "PEM key for -tls")
	size := fs.Int("size", 100, "response body size in bytes")
	syslog := fs.String("syslog", "", "path of a unix datagram socket to take and drop log lines on, instead of serving HTTP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *syslog != "" {
		var n atomic.Int64
		err := sink(ctx, *syslog, &n)
		fmt.Fprintln(os.Stderr, "backend: syslog socket took", n.Load(), "datagrams")
		return err
	}
	if *addrs == "" {
		return errors.New("-addrs or -syslog is required")
	}
	if *tlsAddr != "" && (*cert == "" || *key == "") {
		return errors.New("-tls needs -cert and -key")
	}
	if *size < 0 {
		return fmt.Errorf("-size %d: want ≥ 0", *size)
	}
	body := bytes.Repeat([]byte("a"), *size)

	var servers []*http.Server
	errc := make(chan error, 8)
	serve := func(addr string, withTLS bool) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		srv := &http.Server{
			Handler:           fixed(body, addr),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       5 * time.Minute,
		}
		servers = append(servers, srv)
		go func() {
			var err error
			if withTLS {
				err = srv.ServeTLS(ln, *cert, *key)
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving %s: %w", addr, err)
			}
		}()
		return nil
	}
	for _, a := range strings.Split(*addrs, ",") {
		if err := serve(strings.TrimSpace(a), false); err != nil {
			shutdown(servers)
			return err
		}
	}
	if *tlsAddr != "" {
		if err := serve(*tlsAddr, true); err != nil {
			shutdown(servers)
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "backend: serving", *addrs, *tlsAddr)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown(servers)
	return err
}

// fixed answers every request with the same body; the request body, if
// any, is drained so the connection stays reusable.
func fixed(body []byte, name string) http.Handler {
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", length)
		h.Set("X-Backend", name)
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}

// shutdown stops every server, giving open requests a second.
func shutdown(servers []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				s.Close()
			}
		}()
	}
	wg.Wait()
}

// sink takes datagrams on a unix socket at path and drops them until ctx
// ends, counting them in n.
func sink(ctx context.Context, path string, n *atomic.Int64) error {
	_ = os.Remove(path) // a socket left by an earlier run
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer os.Remove(path)
	buf := make([]byte, 64<<10)
	for {
		if _, _, err := conn.ReadFrom(buf); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		n.Add(1)
	}
}
