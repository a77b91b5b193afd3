package h1wire

import (
	"bufio"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// readLine reads one field line as net/textproto reads a head's fields:
// the name, canonical, and the value, or false where it refuses the line.
func readLine(line string) (name, value string, ok bool) {
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(line + "\r\n")))
	h, err := tp.ReadMIMEHeader()
	if err != nil || len(h) != 1 {
		return "", "", false
	}
	for k, vv := range h {
		if len(vv) != 1 {
			return "", "", false
		}
		return k, vv[0], true
	}
	return "", "", false
}

// checkFieldLine holds FieldLine's reading of line to net/textproto's:
// a line it takes reads the same there, name and value.
func checkFieldLine(t *testing.T, line string) bool {
	t.Helper()
	colon, vstart, vend, next, ok := FieldLine([]byte(line), 0)
	if !ok {
		return false
	}
	if next != len(line) {
		t.Fatalf("%q: next line at %d, want %d", line, next, len(line))
	}
	name, value, tok := readLine(line)
	if !tok {
		t.Fatalf("%q: FieldLine took a line net/textproto refuses", line)
	}
	if got := CanonicalKey(line[:colon]); got != name || line[vstart:vend] != value {
		t.Fatalf("%q: read as %q: %q, net/textproto reads %q: %q", line, got, line[vstart:vend], name, value)
	}
	return true
}

func TestFieldLine(t *testing.T) {
	for _, line := range []string{
		"Host: a\r\n",
		"content-type:text/html\r\n",
		"X-Empty:\r\n",
		"X-Spaces: \t a b \t\r\n",
		"x_under.dot!#$%&'*+-^`|~: v\r\n",
		"X-Obs: caf\xc3\xa9 \x80\xff\r\n",
		"X: a:b\r\n",
	} {
		if !checkFieldLine(t, line) {
			t.Errorf("%q: refused, want it read", line)
		}
	}
	for _, line := range []string{
		"Host : a\r\n",    // white space before the colon
		" Host: a\r\n",    // folded onto the line before
		": a\r\n",         // no name
		"Bad Name: a\r\n", // not a token
		"Host a\r\n",      // no colon
		"X: a\rb\r\n",     // a CR alone
		"X: a\nb\r\n",     // an LF alone
		"X: a\x00\r\n",    // a control byte
		"X: a\x7f\r\n",    // DEL
		"X: a\n",          // a bare LF ends it
		"X: a\r",          // runs off the end
		"X: a",
		"X",
		"",
	} {
		if checkFieldLine(t, line) {
			t.Errorf("%q: read, want it refused", line)
		}
	}
}

// FuzzFieldLineSameAsTextproto: a line FieldLine reads, net/textproto
// reads the same.
func FuzzFieldLineSameAsTextproto(f *testing.F) {
	f.Add("Host", " a")
	f.Add("x-a", "\t1 \t")
	f.Add("X", " caf\xc3\xa9")
	f.Fuzz(func(t *testing.T, name, value string) {
		if strings.ContainsAny(name+value, "\r\n") {
			t.Skip("more than one line") // TestFieldLine has the line ends alone
		}
		checkFieldLine(t, name+":"+value+"\r\n")
	})
}

func TestAddValueSharesOneArray(t *testing.T) {
	h := http.Header{}
	spare := make([]string, 3)
	spare = AddValue(h, spare, "A", "1")
	spare = AddValue(h, spare, "B", "2")
	spare = AddValue(h, spare, "A", "3")
	if len(spare) != 1 || len(h["A"]) != 2 || h["A"][1] != "3" || h["B"][0] != "2" {
		t.Fatalf("header %v, %d slots left; want A: 1, 3 and B: 2 with 1 left", h, len(spare))
	}
	if n := testing.AllocsPerRun(100, func() {
		clear(h)
		AddValue(h, make([]string, 1), "C", "4")
	}); n > 1 {
		t.Errorf("%v allocations for a first value, want only its array's", n)
	}
}

func TestCanonicalKey(t *testing.T) {
	for _, name := range []string{"Host", "content-type", "X-FORWARDED-FOR", "x", "A-b-C", "Www-Authenticate", "x_under"} {
		if got, want := CanonicalKey(name), textproto.CanonicalMIMEHeaderKey(name); got != want {
			t.Errorf("CanonicalKey(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{"GET": true, "x-a_b.c!": true, "": false, "a b": false, "a:b": false, "é": false} {
		if got := IsToken(s); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", s, got, want)
		}
	}
}
