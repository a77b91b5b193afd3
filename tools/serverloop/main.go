// Command serverloop measures what net/http's server costs the proxy per
// request. It serves the proxy's request path (proxy.Server's handler, a
// least-connections pool over the given backends, the HTTP/1.1 backend
// transport) either behind net/http's server (-server nethttp) or behind
// the smallest HTTP/1.1 loop that can carry the peer harness's load
// (-server loop): one goroutine per connection reading requests with
// http.ReadRequest and writing the response head and body through one
// buffered writer, with no background read, no deadlines, no limits and
// no protocol checks beyond ReadRequest's. Run both at once on the proxy
// core and load them in turn (see docs/performance.md).
//
// It is a measurement, not a server: the loop lacks everything that makes
// net/http's server safe to face clients with (header and body limits,
// timeouts, Host checks, Expect: 100-continue, HTTP/1.0, upgrades,
// trailers, graceful shutdown).
package main

import (
	"bufio"
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/proxy"
)

type rw struct {
	h       http.Header
	bw      *bufio.Writer
	status  int
	wrote   bool
	chunked bool
}

func (w *rw) Header() http.Header { return w.h }
func (w *rw) WriteHeader(code int) {
	if w.wrote || code < 200 {
		return
	}
	w.status = code
	w.writeHead(-1)
}
func (w *rw) writeHead(n int) {
	w.wrote = true
	if w.status == 0 {
		w.status = 200
	}
	bw := w.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(w.status))
	bw.WriteString(" ")
	bw.WriteString(http.StatusText(w.status))
	bw.WriteString("\r\n")
	if _, ok := w.h["Content-Length"]; !ok {
		if n >= 0 {
			w.h["Content-Length"] = []string{strconv.Itoa(n)}
		} else {
			w.h["Transfer-Encoding"] = []string{"chunked"}
			w.chunked = true
		}
	}
	for k, vs := range w.h {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
}
func (w *rw) Write(p []byte) (int, error) {
	if !w.wrote {
		w.writeHead(-1)
	}
	if w.chunked {
		w.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		w.bw.WriteString("\r\n")
		n, err := w.bw.Write(p)
		w.bw.WriteString("\r\n")
		return n, err
	}
	return w.bw.Write(p)
}
func (w *rw) Flush() { w.bw.Flush() }

func serve(c net.Conn, h http.Handler) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		req.RemoteAddr = c.RemoteAddr().String()
		ctx, cancel := context.WithCancel(context.Background())
		req = req.WithContext(ctx)
		w := &rw{h: http.Header{}, bw: bw}
		h.ServeHTTP(w, req)
		if !w.wrote {
			w.writeHead(0)
		} else if w.chunked {
			bw.WriteString("0\r\n\r\n")
		}
		cancel()
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:29300", "listen address (loopback)")
	backends := flag.String("backends", "", "comma-separated backend addresses")
	server := flag.String("server", "loop", "loop | nethttp")
	flag.Parse()
	bp := balancer.NewPool("fleet", balancer.Options{})
	var specs []balancer.Spec
	for _, a := range strings.Split(*backends, ",") {
		specs = append(specs, balancer.Spec{Address: a, Zone: "a"})
	}
	bp.Update(specs)
	s := proxy.NewServer(context.Background(), proxy.Options{})
	g, err := s.Build(proxy.Config{
		Listeners: []proxy.ListenerConfig{{Name: "plain", Routes: []proxy.Route{{Pool: "fleet"}}}},
		Pools: []proxy.PoolConfig{{Name: "fleet", Balancer: bp, Scheme: "http",
			Transport: proxy.NewTransport(proxy.TransportOptions{Connect: time.Second, MaxIdlePerBackend: 64}),
			Timeouts:  proxy.Timeouts{Connect: time.Second, PerTry: 30 * time.Second, Request: 30 * time.Second},
			Retry:     proxy.RetryPolicy{Attempts: 3}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	s.Publish(g)
	h := s.Handler("plain")
	if *server == "nethttp" {
		log.Fatal((&http.Server{Addr: *addr, Handler: h}).ListenAndServe())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, h)
	}
}
