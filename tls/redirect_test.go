package edgetls

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRedirectHTTPS(t *testing.T) {
	servers := map[int]*httptest.Server{}
	for _, port := range []int{8443, 443} {
		s := httptest.NewServer(RedirectHTTPS(port))
		t.Cleanup(s.Close)
		servers[port] = s
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	tests := []struct {
		name       string
		port       int
		method     string
		host       string
		target     string
		wantStatus int
		wantLoc    string
	}{
		{name: "path and query kept", port: 8443, method: "GET", host: "example.com:8080", target: "/a/b?c=d&e=%2F", wantStatus: 308, wantLoc: "https://example.com:8443/a/b?c=d&e=%2F"},
		{name: "post keeps method with 308", port: 8443, method: "POST", host: "example.com", target: "/submit", wantStatus: 308, wantLoc: "https://example.com:8443/submit"},
		{name: "port 443 left out", port: 443, method: "GET", host: "example.com:80", target: "/", wantStatus: 308, wantLoc: "https://example.com/"},
		{name: "escaped path kept", port: 443, method: "GET", host: "example.com", target: "/a%20b/%2e", wantStatus: 308, wantLoc: "https://example.com/a%20b/%2e"},
		{name: "ipv6 host", port: 8443, method: "GET", host: "[::1]:8080", target: "/x", wantStatus: 308, wantLoc: "https://[::1]:8443/x"},
		{name: "ip host", port: 8443, method: "HEAD", host: "127.0.0.1:8080", target: "/x", wantStatus: 308, wantLoc: "https://127.0.0.1:8443/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, servers[tt.port].URL+tt.target, strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Location"); got != tt.wantLoc {
				t.Errorf("Location %q, want %q", got, tt.wantLoc)
			}
		})
	}

	t.Run("missing host is 400", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/x", nil)
		req.Host = ""
		RedirectHTTPS(8443).ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
			t.Errorf("status %d Location %q, want 400 and none", rec.Code, rec.Header().Get("Location"))
		}
	})
}
