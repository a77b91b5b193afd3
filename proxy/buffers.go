package proxy

import "sync"

// copyPool holds the 32 KiB buffers response bodies are copied through.
var copyPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
