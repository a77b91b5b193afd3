// Package edgetls is Azimuth's TLS edge: the certificate store that picks a
// certificate by SNI and reloads it from disk without dropping connections,
// the listener TLS settings (versions, ALPN, client-certificate auth, session
// ticket key rotation), the HTTP/1.1+HTTP/2 and HTTP/3 server wiring that
// shares one certificate source, the HTTPS redirect handler and the backend
// (upstream) TLS config builder. Check and CheckBackend read the same files
// with the same code, without serving, so `azimuth validate` refuses what a
// reload would refuse.
//
// The package lives in the folder tls/ but is named edgetls, not tls, because
// every caller also imports crypto/tls beside it: a second package called tls
// would force an import alias at each use and make code reviews ambiguous
// about which tls.Config is meant.
//
// Typical wiring for one listener:
//
//	metrics, err := edgetls.NewMetrics(reg)  // once per Registerer
//	src, err := edgetls.New(edgetls.Options{Listener: "https", Certs: certs}, edgetls.Deps{Metrics: metrics, Logger: log})
//	go src.Run(ctx)                      // watches the files, rotates ticket keys
//	srv, err := edgetls.Listen(edgetls.ServerOptions{Addr: addr, Handler: h, TLS: src, HTTP3: true})
//	go srv.Serve()
//	...
//	srv.Shutdown(drainCtx)               // QUIC first, then TCP
//
// Of Azimuth it imports only internal/h1server, which serves its HTTP/1.1
// connections, and internal/sockio, the socket reads and writes beneath it.
package edgetls
