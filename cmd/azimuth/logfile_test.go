package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/azimuthproxy/azimuth/proxy"
)

// A regular file takes the access log in large batches, whether it is the
// configured file or stdout redirected to one; a pipe gets batches no
// larger than PIPE_BUF, and a writer of unknown kind is treated as one.
func TestBatchFor(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rf, err := openLogFile(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, tc := range map[string]struct {
		w    interface{ Write([]byte) (int, error) }
		want int
	}{
		"stdout redirected to a file": {f, proxy.FileBatch},
		"the configured file":         {rf, proxy.FileBatch},
		"a pipe":                      {w, proxy.PipeBatch},
		"a buffer":                    {&bytes.Buffer{}, proxy.PipeBatch},
	} {
		if got := batchFor(tc.w); got != tc.want {
			t.Errorf("%s: batch %d, want %d", name, got, tc.want)
		}
	}
}
