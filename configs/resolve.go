package configs

import "path/filepath"

// resolvePaths makes every file path in c absolute, reading relative ones
// against dir, the config file's directory, so the proxy finds the same
// files whatever its working directory. Validation then checks they exist.
func resolvePaths(c *Config, dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Admin.TokenFile)
	abs(&c.Overrides.File)
	for i := range c.Admin.Tokens {
		abs(&c.Admin.Tokens[i].File)
	}
	if c.Consul != nil {
		abs(&c.Consul.TokenFile)
		abs(&c.Consul.CacheDir)
		if t := c.Consul.TLS; t != nil {
			abs(&t.CAFile)
			abs(&t.CertFile)
			abs(&t.KeyFile)
		}
	}
	switch c.Log.AccessLog.Output {
	case AccessLogStdout, AccessLogStderr, AccessLogOff:
	default:
		abs(&c.Log.AccessLog.Output)
	}
	for i := range c.Listeners {
		if t := c.Listeners[i].TLS; t != nil {
			for j := range t.Certificates {
				abs(&t.Certificates[j].CertFile)
				abs(&t.Certificates[j].KeyFile)
			}
			abs(&t.ClientCAFile)
			if a := t.ACME; a != nil {
				abs(&a.DirectoryCAFile)
				abs(&a.Storage)
			}
		}
	}
	for i := range c.Pools {
		if t := c.Pools[i].TLS; t != nil {
			abs(&t.CAFile)
			abs(&t.CertFile)
			abs(&t.KeyFile)
		}
	}
}
