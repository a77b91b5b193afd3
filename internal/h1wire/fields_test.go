package h1wire

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// FuzzWriteFieldsSameAsHeaderWrite: for any header, WriteFields writes
// the bytes http.Header.Write writes.
func FuzzWriteFieldsSameAsHeaderWrite(f *testing.F) {
	f.Add("Accept: */*\nX-A: 1\nX-A: 2")
	f.Add("X: a\r\n b\nbad name: v\nEmpty:")
	f.Add("Trailer:\tx \nTrailer:Content-Length: 5")
	f.Fuzz(func(t *testing.T, fieldLines string) {
		h := http.Header{}
		for line := range strings.SplitSeq(fieldLines, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				h[k] = append(h[k], v) // names as they come, canonical or not
			}
		}
		var ours, theirs bytes.Buffer
		bw := bufio.NewWriter(&ours)
		WriteFields(bw, h, nil, nil, false)
		_ = bw.Flush()
		_ = h.Write(&theirs)
		if ours.String() != theirs.String() {
			t.Fatalf("fields differ for %q\nours:   %q\ntheirs: %q", fieldLines, ours.String(), theirs.String())
		}
	})
}

// WriteFields leaves out what it is told to, and trailers when asked.
func TestWriteFieldsSkips(t *testing.T) {
	h := http.Header{"A": {"1"}, "Host": {"h"}, http.TrailerPrefix + "T": {"t"}}
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	keys := WriteFields(bw, h, nil, []string{"Host"}, true)
	_ = bw.Flush()
	if b.String() != "A: 1\r\n" || len(keys) != 0 {
		t.Fatalf("wrote %q, keys %v; want only A, keys emptied", b.String(), keys)
	}
}
