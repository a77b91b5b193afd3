package consultest

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"

	"github.com/azimuthproxy/azimuth/internal/pki"
)

// TLSFiles are PEM files generated for an agent started with Options.TLS:
// a CA, the agent's certificate (for 127.0.0.1 and localhost) and a client
// certificate the agent accepts.
type TLSFiles struct {
	CAFile                        string
	ServerCertFile, ServerKeyFile string
	ClientCertFile, ClientKeyFile string
}

// generateTLS writes a fresh CA, server and client certificate into dir.
func generateTLS(dir string) (TLSFiles, error) {
	f := TLSFiles{
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"),
		ServerKeyFile:  filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	ca, err := pki.NewCA("azimuth test consul ca")
	if err != nil {
		return f, err
	}
	server, err := ca.Issue(pki.Leaf{CN: "server.dc1.consul", DNS: []string{"localhost", "server.dc1.consul"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return f, err
	}
	client, err := ca.Issue(pki.Leaf{CN: "azimuth", Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return f, err
	}
	return f, errors.Join(os.WriteFile(f.CAFile, ca.CertPEM, 0o644),
		server.WriteFiles(f.ServerCertFile, f.ServerKeyFile), client.WriteFiles(f.ClientCertFile, f.ClientKeyFile))
}
