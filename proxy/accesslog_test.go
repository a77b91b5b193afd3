package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestJSONAccessLogMatchesSlog: the hand-encoded line carries the same
// keys and values as slog's JSON handler gives the same request, hostile
// strings included, and is valid JSON on one line.
func TestJSONAccessLogMatchesSlog(t *testing.T) {
	tests := []struct {
		name    string
		host    string
		path    string
		tls     bool
		proto   int
		status  int
		aborted bool
		tries   []attemptRecord
	}{
		{"one ok attempt", "app.example.com", "/v1/items", false, 1, 200, false,
			[]attemptRecord{{backend: "127.0.1.1:80", zone: "a", cause: CauseNone, status: 200, duration: 1500 * time.Microsecond}}},
		{"hedged after its per-try time, h2 over tls", "app.example.com", "/", true, 2, 200, false, []attemptRecord{
			{backend: "127.0.1.1:80", zone: "a", cause: CauseTimeout, duration: 300 * time.Millisecond},
			{backend: "127.0.2.1:80", zone: "b", cause: CauseNone, status: 200, duration: 2 * time.Millisecond, hedge: true}}},
		{"hostile strings", "h\"o\\st\n\x01", "/\u2028é\xff<&>\t", false, 3, 502, false,
			[]attemptRecord{{backend: "127.0.1.1:80", zone: "z\"one", cause: CauseStatus, status: 502}}},
		{"aborted without attempts", "x", "/", false, 1, 499, true, nil},
		{"more attempts than logged", "x", "/", false, 1, 503, false, make([]attemptRecord, maxLoggedAttempts+2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://example.com/", nil)
			r.Host, r.URL.Path, r.ProtoMajor, r.RemoteAddr = tt.host, tt.path, tt.proto, "127.0.0.1:4000"
			if tt.tls {
				r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
			}
			x := &exchange{listener: &listener{ListenerConfig: ListenerConfig{Name: "https"}}, pool: &Pool{PoolConfig: PoolConfig{Name: "web"}},
				id: "req-1", start: time.Now(), rec: recorder{bytes: 1234}, tries: len(tt.tries)}
			copy(x.attempts[:], tt.tries)
			if tt.status >= 500 {
				x.race.refused = RefusedBudget
			}

			var fast, slow bytes.Buffer
			NewJSONAccessLog(&fast, 1).log(x, r, tt.status, tt.aborted)
			NewAccessLog(slog.New(slog.NewJSONHandler(&slow, nil)), 1).log(x, r, tt.status, tt.aborted)
			if n := strings.Count(fast.String(), "\n"); n != 1 || !strings.HasSuffix(fast.String(), "\n") {
				t.Fatalf("want one line, got %d newlines: %q", n, fast.String())
			}
			var got, want map[string]any
			if err := json.Unmarshal(fast.Bytes(), &got); err != nil {
				t.Fatalf("not JSON: %v: %s", err, fast.String())
			}
			if err := json.Unmarshal(slow.Bytes(), &want); err != nil {
				t.Fatal(err)
			}
			if _, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil {
				t.Errorf("time %q: %v", got["time"], err)
			}
			if got["duration_ms"].(float64) < 0 {
				t.Errorf("duration_ms %v", got["duration_ms"])
			}
			for _, m := range []map[string]any{got, want} {
				delete(m, "time")
				delete(m, "duration_ms") // measured at each call
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("hand-encoded line differs from slog's:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestJSONAccessLogSamplesSuccessOnly: with sampling at 0, successes are
// dropped and failures still written.
func TestJSONAccessLogSamplesSuccessOnly(t *testing.T) {
	var buf bytes.Buffer
	l := NewJSONAccessLog(&buf, 0)
	x := &exchange{listener: &listener{}, pool: &Pool{}, start: time.Now()}
	r := httptest.NewRequest("GET", "/", nil)
	l.log(x, r, 200, false)
	if buf.Len() != 0 {
		t.Fatalf("sampled-out success written: %s", buf.String())
	}
	l.log(x, r, 503, false)
	l.log(x, r, 200, true)
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want the failure and the aborted request:\n%s", n, buf.String())
	}
}

// BenchmarkAccessLog compares the two encoders on a retried request.
func BenchmarkAccessLog(b *testing.B) {
	r := httptest.NewRequest("GET", "http://app.example.com/v1/items?id=7", nil)
	x := &exchange{listener: &listener{ListenerConfig: ListenerConfig{Name: "https"}}, pool: &Pool{PoolConfig: PoolConfig{Name: "web"}},
		id: "0123456789abcdef", start: time.Now(), rec: recorder{bytes: 1234}, tries: 2}
	x.attempts[0] = attemptRecord{backend: "127.0.1.1:8080", zone: "a", cause: CauseTimeout, duration: 300 * time.Millisecond}
	x.attempts[1] = attemptRecord{backend: "127.0.2.1:8080", zone: "b", status: 200, duration: 2 * time.Millisecond}
	for name, l := range map[string]*AccessLog{
		"slog": NewAccessLog(slog.New(slog.NewJSONHandler(io.Discard, nil)), 1),
		"json": NewJSONAccessLog(io.Discard, 1),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.log(x, r, 200, false)
			}
		})
	}
}
