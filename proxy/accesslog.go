package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// AccessLog writes one structured line per request, with every attempt it
// took. Successful requests (status below 400) may be sampled; failures are
// always logged.
type AccessLog struct {
	logger *slog.Logger // the slog path, for the text format
	w      io.Writer    // the JSON path; nil means use logger
	text   io.Writer    // what NewTextAccessLog's logger writes to
	buf    *lineBuffer  // set by FlushEvery: what w or text now write through
	sample float64
}

// NewAccessLog logs through logger, keeping the given fraction (0 to 1) of
// successful requests. It suits any slog format; NewJSONAccessLog writes
// the same JSON lines at a fraction of the cost.
func NewAccessLog(logger *slog.Logger, sampleSuccess float64) *AccessLog {
	return &AccessLog{logger: logger, sample: sampleSuccess}
}

// NewTextAccessLog writes each line to w in slog's text format, one Write
// per line, so that FlushEvery can gather them.
func NewTextAccessLog(w io.Writer, sampleSuccess float64) *AccessLog {
	return &AccessLog{logger: slog.New(slog.NewTextHandler(w, nil)), text: w, sample: sampleSuccess}
}

// NewJSONAccessLog writes each line to w as one JSON object, with the
// keys and layout slog's JSON handler would give it, encoded by hand into
// a pooled buffer: this runs once per request, and slog's generic
// encoding (reflection for the attempts list) was most of the cost of
// logging. Each line is one Write call, so a writer shared with others
// (a file reopened on rotation) never interleaves half lines; w must take
// concurrent Writes, as *os.File does.
func NewJSONAccessLog(w io.Writer, sampleSuccess float64) *AccessLog {
	return &AccessLog{w: w, sample: sampleSuccess}
}

// FlushEvery makes the access log gather its lines and write them
// together: at most d after the first waiting line, at once when size
// bytes would wait (PipeBatch for a pipe or a socket, FileBatch for a
// regular file; 0 means PipeBatch), and on Flush. Call it before the first
// request, and Flush before the writer is reopened and at exit, so no line
// is lost; a crash loses what waits. d <= 0, a nil AccessLog or a log made
// by NewAccessLog (any slog handler) leave every line written at once.
func (a *AccessLog) FlushEvery(d time.Duration, size int) {
	if a == nil || d <= 0 || a.buf != nil {
		return
	}
	if size <= 0 {
		size = PipeBatch
	}
	switch {
	case a.w != nil:
		a.buf = newLineBuffer(a.w, d, size)
		a.w = a.buf
	case a.text != nil:
		a.buf = newLineBuffer(a.text, d, size)
		a.logger = slog.New(slog.NewTextHandler(a.buf, nil))
	}
}

// Flush writes the lines a FlushEvery log holds; otherwise it does
// nothing.
func (a *AccessLog) Flush() error {
	if a == nil || a.buf == nil {
		return nil
	}
	return a.buf.Flush()
}

// attemptLog is one attempt as it appears in the access log.
type attemptLog struct {
	Backend  string  `json:"backend"`
	Zone     string  `json:"zone"`
	Result   string  `json:"result"`
	Status   int     `json:"status,omitempty"`
	Duration float64 `json:"duration_ms"`
	Hedge    bool    `json:"hedge,omitempty"`
}

func (a *AccessLog) log(x *exchange, r *http.Request, status int, aborted bool) {
	if status < 400 && !aborted && a.sample < 1 && rand.Float64() >= a.sample {
		return
	}
	if a.w != nil {
		a.writeJSON(x, r, status, aborted)
		return
	}
	attempts := make([]attemptLog, min(x.tries, maxLoggedAttempts))
	for i := range attempts {
		at := x.attempts[i]
		attempts[i] = attemptLog{Backend: at.backend, Zone: at.zone, Result: at.cause.String(), Status: at.status,
			Duration: millis(at.duration), Hedge: at.hedge}
	}
	attrs := []slog.Attr{
		slog.String("request_id", x.id),
		slog.String("client", r.RemoteAddr),
		slog.String("listener", x.listener.Name),
		slog.String("proto", protoName(r)),
		slog.String("tls", tlsVersion(r.TLS)),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", x.rec.bytes),
		slog.Float64("duration_ms", millis(time.Since(x.start))),
		slog.String("pool", x.pool.Name),
		slog.Int("tries", x.tries),
		slog.Any("attempts", attempts),
	}
	if x.race.refused != "" {
		attrs = append(attrs, slog.String("retry_refused", x.race.refused))
	}
	if x.backupFor != nil {
		attrs = append(attrs, slog.String("backup_for", x.backupFor.Name), slog.String("backup_reason", x.backupReason))
	}
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	a.logger.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

// lineBuffers recycles JSON line buffers; lines longer than 64KiB (a huge
// path) are not kept.
var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (a *AccessLog) writeJSON(x *exchange, r *http.Request, status int, aborted bool) {
	bp := lineBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = time.Now().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	b = appendJSONString(b, x.id)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, r.RemoteAddr)
	b = append(b, `,"listener":`...)
	b = appendJSONString(b, x.listener.Name)
	b = append(b, `,"proto":"`...)
	b = append(b, protoName(r)...)
	b = append(b, `","tls":"`...)
	b = append(b, tlsVersion(r.TLS)...)
	b = append(b, `","method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, r.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.URL.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, x.rec.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, millis(time.Since(x.start)), 'f', -1, 64)
	b = append(b, `,"pool":`...)
	b = appendJSONString(b, x.pool.Name)
	b = append(b, `,"tries":`...)
	b = strconv.AppendInt(b, int64(x.tries), 10)
	b = append(b, `,"attempts":[`...)
	for i := range min(x.tries, maxLoggedAttempts) {
		at := &x.attempts[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"backend":`...)
		b = appendJSONString(b, at.backend)
		b = append(b, `,"zone":`...)
		b = appendJSONString(b, at.zone)
		b = append(b, `,"result":"`...)
		b = append(b, at.cause.String()...)
		b = append(b, '"')
		if at.status != 0 {
			b = append(b, `,"status":`...)
			b = strconv.AppendInt(b, int64(at.status), 10)
		}
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendFloat(b, millis(at.duration), 'f', -1, 64)
		if at.hedge {
			b = append(b, `,"hedge":true`...)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if x.race.refused != "" {
		b = append(b, `,"retry_refused":"`...)
		b = append(b, x.race.refused...)
		b = append(b, '"')
	}
	if x.backupFor != nil {
		b = append(b, `,"backup_for":`...)
		b = appendJSONString(b, x.backupFor.Name)
		b = append(b, `,"backup_reason":"`...)
		b = append(b, x.backupReason...)
		b = append(b, '"')
	}
	if aborted {
		b = append(b, `,"aborted":true`...)
	}
	b = append(b, "}\n"...)
	_, _ = a.w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		lineBuffers.Put(bp)
	}
}

// millis is d in milliseconds with microsecond precision.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// appendJSONString appends s as a JSON string. Request fields come from
// clients, so quotes, backslashes, control characters and invalid UTF-8
// are escaped (the last as U+FFFD), as are U+2028 and U+2029, which break
// JavaScript readers of the log.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func protoName(r *http.Request) string {
	switch r.ProtoMajor {
	case 3:
		return "h3"
	case 2:
		return "h2"
	}
	return "h1"
}

func tlsVersion(cs *tls.ConnectionState) string {
	if cs == nil {
		return ""
	}
	return tls.VersionName(cs.Version)
}
