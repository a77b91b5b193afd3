package discovery

import (
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"
)

// NewClient builds a Consul API client from o. Fields o leaves empty take
// the values the Consul command line would use (CONSUL_HTTP_ADDR,
// CONSUL_HTTP_TOKEN, ...), so operators' usual environment keeps working. It
// does not contact the agent: an unreachable agent shows up later, as
// watcher errors.
func NewClient(o Options) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if o.Address != "" {
		cfg.Address = o.Address
	}
	if o.Datacenter != "" {
		cfg.Datacenter = o.Datacenter
	}
	if o.Token != "" {
		cfg.Token = o.Token
	}
	if o.TLS.enabled() {
		cfg.Scheme = "https"
		cfg.TLSConfig = api.TLSConfig{
			Address:  o.TLS.ServerName,
			CAFile:   o.TLS.CAFile,
			CertFile: o.TLS.CertFile,
			KeyFile:  o.TLS.KeyFile,
		}
	}
	if strings.HasPrefix(cfg.Address, "http://") && o.TLS.enabled() {
		return nil, fmt.Errorf("creating consul client: address %q is http:// but tls is configured", cfg.Address)
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating consul client for %s: %w", cfg.Address, err)
	}
	return client, nil
}
