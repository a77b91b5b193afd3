package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/proxy"
)

// reopenFile is an append-only log file that can be reopened, so logrotate
// can move it away and send SIGUSR1.
type reopenFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openLogFile(path string) (*reopenFile, error) {
	r := &reopenFile{path: path}
	return r, r.reopen()
}

func (r *reopenFile) reopen() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("opening access log: %w", err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// newAccessLog builds the access log the config asks for; the file, if
// any, is returned so SIGUSR1 can reopen it.
func newAccessLog(c configs.Log, stdout, stderr io.Writer) (*proxy.AccessLog, *reopenFile, error) {
	var w io.Writer
	var file *reopenFile
	switch c.AccessLog.Output {
	case configs.AccessLogOff:
		return nil, nil, nil
	case configs.AccessLogStdout, "":
		w = stdout
	case configs.AccessLogStderr:
		w = stderr
	default:
		f, err := openLogFile(c.AccessLog.Output)
		if err != nil {
			return nil, nil, err
		}
		w, file = f, f
	}
	var a *proxy.AccessLog
	if c.Format == "text" {
		a = proxy.NewTextAccessLog(w, c.AccessLog.SampleSuccess)
	} else {
		a = proxy.NewJSONAccessLog(w, c.AccessLog.SampleSuccess)
	}
	a.FlushEvery(c.AccessLog.FlushInterval, batchFor(w))
	return a, file, nil
}

// batchFor is how much of the access log one write may carry to w:
// FileBatch for a regular file (stdout redirected to one included), where
// O_APPEND lands every write whole, PipeBatch for a pipe, a socket or a
// terminal.
func batchFor(w io.Writer) int {
	var f *os.File
	switch v := w.(type) {
	case *reopenFile:
		f = v.f
	case *os.File:
		f = v
	}
	if f != nil {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return proxy.FileBatch
		}
	}
	return proxy.PipeBatch
}
