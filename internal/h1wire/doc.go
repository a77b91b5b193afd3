// Package h1wire holds the pieces of HTTP/1.1's wire format that the
// proxy's server (internal/h1server), its client (internal/h1client) and
// the load generator (loadtest) share, so that each is written once:
// writing header fields as net/http writes them, scanning a head's field
// lines as net/http reads them, the token table, and the pool of buffered
// writers a message is written through.
//
// What it writes is byte for byte what net/http writes, and a line it
// scans reads as net/http reads it; what it cannot read the same way it
// refuses, and the caller leaves that head to net/http. The callers' fuzz
// targets hold whole heads to net/http's results, this package's hold
// the pieces.
//
// It imports nothing of the project.
package h1wire
