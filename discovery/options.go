package discovery

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Options says how to reach the Consul agent. cmd/azimuth fills it from the
// config file; discovery never reads the config file itself.
type Options struct {
	// Address is host:port of the agent's HTTP API, optionally prefixed with
	// "http://" or "https://". Empty means the client library's default
	// (CONSUL_HTTP_ADDR, else 127.0.0.1:8500).
	Address string
	// Datacenter to query; empty means the agent's own.
	Datacenter string
	// Token is the ACL token sent with every query; see LoadToken.
	Token string
	// TLS configures HTTPS to the agent; the zero value means plain HTTP
	// unless Address says "https://".
	TLS TLSOptions
	// CacheDir is where the watchers keep their pools' last sets (see
	// WatcherConfig.CacheFile); the client itself does not use it.
	CacheDir string
}

// TLSOptions configures HTTPS to the Consul agent.
type TLSOptions struct {
	// CAFile verifies the agent's certificate; empty means the system pool.
	CAFile string
	// CertFile and KeyFile are the client certificate, when the agent
	// requires one (verify_incoming).
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked in the agent's certificate.
	ServerName string
}

// enabled reports whether any TLS setting is present, which switches the
// scheme to https.
func (o TLSOptions) enabled() bool {
	return o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != ""
}

// PoolOptions says which Consul service feeds one pool and how its
// instances become specs.
type PoolOptions struct {
	// Service is the Consul service name; required.
	Service string
	// Tags filters instances to those carrying every tag.
	Tags []string
	// ZoneMeta is the service- or node-metadata key holding the zone
	// (e.g. "az"); service metadata wins over node metadata.
	ZoneMeta string
	// ZoneTagPrefix finds the zone in a tag "<prefix><zone>" (e.g. "az="),
	// consulted when neither metadata has it.
	ZoneTagPrefix string
	// WeightMeta is the service-metadata key holding a positive integer
	// weight; without it the Consul service weights apply.
	WeightMeta string
	// IncludeWarning admits instances whose checks are warning; critical
	// and maintenance instances are never admitted.
	IncludeWarning bool
	// AllowStale lets any server answer, not only the leader: cheaper for
	// large clusters, at the price of slightly older answers.
	AllowStale bool
}

// Validate reports every problem with the options, joined.
func (o PoolOptions) Validate() error {
	var errs []error
	if strings.TrimSpace(o.Service) == "" {
		errs = append(errs, errors.New("service: must not be empty"))
	}
	for i, tag := range o.Tags {
		if tag == "" {
			errs = append(errs, fmt.Errorf("tags[%d]: must not be empty", i))
		}
	}
	return errors.Join(errs...)
}

// Timing tunes a watcher's loop. Zero fields take the defaults below.
type Timing struct {
	// Wait is how long one blocking query may hang (Consul caps it at
	// 10m). Default 5m.
	Wait time.Duration
	// MinInterval is the shortest time between the starts of two queries.
	// It bounds the query rate of a flapping service (20/s at 50ms) while
	// a change after a quiet spell still arrives at once, because the query
	// that reports it has been waiting far longer. Default 50ms.
	MinInterval time.Duration
	// BackoffBase is the first wait after an error; each further error in
	// a row doubles it, up to BackoffMax. Defaults 250ms and 1s: the agent
	// is local and a retry costs it one request, and the set must catch
	// up within about a second of the agent's return, however long it
	// was away.
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

// withDefaults returns t with zero fields set to their defaults.
func (t Timing) withDefaults() Timing {
	if t.Wait <= 0 {
		t.Wait = 5 * time.Minute
	}
	if t.MinInterval <= 0 {
		t.MinInterval = 50 * time.Millisecond
	}
	if t.BackoffBase <= 0 {
		t.BackoffBase = 250 * time.Millisecond
	}
	if t.BackoffMax <= 0 {
		t.BackoffMax = time.Second
	}
	if t.BackoffMax < t.BackoffBase {
		t.BackoffMax = t.BackoffBase
	}
	return t
}

// LoadToken returns the ACL token to use: the contents of file when file is
// set (surrounding white space trimmed), else the CONSUL_HTTP_TOKEN variable
// as read by getenv (os.Getenv when nil), else "".
func LoadToken(file string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading consul token file: %w", err)
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return "", fmt.Errorf("reading consul token file %s: file is empty", file)
		}
		return token, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	return strings.TrimSpace(getenv("CONSUL_HTTP_TOKEN")), nil
}
