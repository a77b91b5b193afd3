package scenario

import (
	"net"
	"path/filepath"

	"github.com/azimuthproxy/azimuth/internal/pki"
)

// writeSelfSigned writes a fresh self-signed certificate for 127.0.0.1 and
// its key into dir, for a TLS (h2, h3) listener that the load reaches with
// verification off. A new key per run keeps no secret on disk for long.
func writeSelfSigned(dir string) (certFile, keyFile string, err error) {
	iss, err := pki.SelfSigned(pki.Leaf{CN: "azload scenario", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	return certFile, keyFile, iss.WriteFiles(certFile, keyFile)
}
