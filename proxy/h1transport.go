package proxy

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"

	"github.com/azimuthproxy/azimuth/internal/h1client"
)

// h1Transport is a pool's HTTP/1.1 transport: h1client's. The attempt
// loop sends through its Send within the attempt's own lifetime
// (fastpath.AttemptSender); RoundTrip serves every other caller, with a
// lifetime of the request's context that ends when the response body is
// closed.
type h1Transport struct{ *h1client.Transport }

var _ Transport = h1Transport{}

// RoundTrip sends req on a pooled or new connection to req.URL.Host. 1xx
// responses go to the request's httptrace Got1xxResponse hook, if any.
// The request's context ends the exchange until the response body is
// closed.
func (t h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var got1xx func(int, textproto.MIMEHeader) error
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil {
		got1xx = trace.Got1xxResponse
	}
	life := startLifetime(req.Context(), 0)
	resp, err := t.Send(req, life, got1xx)
	if err != nil {
		life.finish()
		return nil, err
	}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok { // 101: the connection
		resp.Body = &finishingRWBody{finishingBody{rw, life}, rw}
	} else {
		resp.Body = &finishingBody{resp.Body, life}
	}
	return resp, nil
}

// finishingBody ends its exchange's lifetime when closed.
type finishingBody struct {
	io.ReadCloser
	life *lifetime
}

func (b *finishingBody) Close() error {
	err := b.ReadCloser.Close()
	b.life.finish()
	return err
}

type finishingRWBody struct {
	finishingBody
	w io.Writer
}

func (b *finishingRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }
