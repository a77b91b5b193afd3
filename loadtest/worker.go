package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// worker sends requests one at a time with its own reusable request and
// read buffer, so the hot loop allocates little beyond what net/http does.
type worker struct {
	g     *generator
	rt    roundTripper // h2 and h3: this worker's client
	shard *shard
	ctx   context.Context
	req   *http.Request
	reqs  []*http.Request // h2 and h3 with a mix: one per entry
	buf   []byte
	h1    *h1Conn
}

func (w *worker) close() {
	if w.h1 != nil {
		w.h1.close()
	}
}

func (g *generator) newWorker(i int, ctx context.Context) *worker {
	o := g.opts
	w := &worker{g: g, shard: g.shards[i%len(g.shards)], ctx: ctx}
	switch {
	case g.h1 != nil:
		w.h1 = newH1Conn(g.h1, o.Timeout)
		return w
	case g.mixH1 != nil:
		w.h1 = newH1Conn(g.mixH1[0], o.Timeout)
		return w
	}
	w.rt = g.rts[i%len(g.rts)]
	w.buf = make([]byte, 32<<10)
	if g.mix == nil {
		w.req = g.newRequest(ctx, o.Method, o.Body)
		return w
	}
	for _, e := range g.mix.entries {
		w.reqs = append(w.reqs, g.newRequest(ctx, e.Method, e.Body))
	}
	return w
}

// newRequest builds the reusable request of a worker for h2 and h3.
func (g *generator) newRequest(ctx context.Context, method string, body []byte) *http.Request {
	o := g.opts
	req, err := http.NewRequestWithContext(ctx, method, o.URL, nil)
	if err != nil {
		// The URL and method were validated in withDefaults; a failure
		// here is a bug.
		panic(fmt.Sprintf("building request: %v", err))
	}
	for k, vs := range o.Header {
		for _, v := range vs {
			if http.CanonicalHeaderKey(k) == "Host" {
				req.Host = v
				continue
			}
			req.Header.Add(k, v)
		}
	}
	if body != nil {
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req
}

// do sends one request planned for intended and records its outcome.
func (w *worker) do(intended time.Time) {
	o := &w.g.opts
	out := outcome{second: int(intended.Sub(w.g.start) / time.Second)}
	if out.second < 0 {
		out.second = 0
	}
	var id requestID
	entry := -1
	if mix := w.g.mix; mix != nil {
		// The ID comes first with a mix, since it picks the method that
		// even a request timed out in the queue is counted under.
		id = requestID{token: w.g.token, n: w.g.ids.Add(1)}
		entry = mix.entry(id.n)
		out.method = mix.methodOf[entry]
	}
	if wait := time.Since(intended); wait > o.Timeout {
		// Planned so long ago that its deadline passed in the queue: it
		// counts as a timeout without being sent.
		out.latency, out.class = wait, ClassTimeout
		w.record(&out)
		return
	}
	if o.IDHeader != "" && entry < 0 {
		id = requestID{token: w.g.token, n: w.g.ids.Add(1)}
	}
	if w.h1 != nil {
		req := w.g.h1
		if entry >= 0 {
			req = w.g.mixH1[entry]
		}
		err := w.h1.do(w.ctx, time.Now().Add(o.Timeout), req, id, &out)
		out.latency = time.Since(intended)
		out.class = Classify(err)
		w.record(&out)
		return
	}
	base, body := w.req, o.Body
	if entry >= 0 {
		base, body = w.reqs[entry], w.g.mix.entries[entry].Body
	}
	ctx, cancel := context.WithTimeout(w.ctx, o.Timeout)
	req := base.WithContext(ctx)
	if o.IDHeader != "" {
		req.Header = req.Header.Clone()
		req.Header.Set(o.IDHeader, id.String())
	}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := w.rt.RoundTrip(req)
	if err == nil {
		out.status = resp.StatusCode
		out.backend = headerValue(resp.Header, "X-Backend")
		out.zone = headerValue(resp.Header, "X-Backend-Zone")
		err = w.drain(resp.Body)
	}
	cancel()
	out.latency = time.Since(intended)
	out.class = Classify(err)
	w.record(&out)
}

func (w *worker) record(out *outcome) { w.shard.record(out) }

// drain reads the body to its end so the connection can be reused and a
// reset mid-body is seen as one.
func (w *worker) drain(body io.ReadCloser) error {
	var err error
	for {
		_, rerr := body.Read(w.buf)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	if cerr := body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// headerValue reads a canonical header key without the canonicalization
// Header.Get performs.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
