package proxy

import "sync"

// copyBuffers pools the 32 KiB buffers ReverseProxy copies bodies through.
type copyBuffers struct{}

var copyPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte { return *copyPool.Get().(*[]byte) }

func (copyBuffers) Put(b []byte) {
	if cap(b) == 32<<10 {
		copyPool.Put(&b)
	}
}
