package discovery

import (
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/azimuthproxy/azimuth/balancer"
)

// admitted reports whether an instance with this aggregated check status
// may receive traffic: passing always, warning only when the pool opts in,
// critical, maintenance and unknown never.
func admitted(status string, includeWarning bool) bool {
	switch status {
	case api.HealthPassing:
		return true
	case api.HealthWarning:
		return includeWarning
	default:
		return false
	}
}

// instanceAddress returns host:port for an instance: the service address,
// else the node address, joined with the service port. ok is false when
// there is no host or no port to join, as for a service registered without
// a port.
func instanceAddress(e *api.ServiceEntry) (addr string, ok bool) {
	if e == nil || e.Service == nil {
		return "", false
	}
	host := e.Service.Address
	if host == "" && e.Node != nil {
		host = e.Node.Address
	}
	if host == "" || e.Service.Port <= 0 || e.Service.Port > 65535 {
		return "", false
	}
	return net.JoinHostPort(host, strconv.Itoa(e.Service.Port)), true
}

// instanceZone finds an instance's zone: service metadata, then node
// metadata under the pool's ZoneMeta key, then the first tag carrying
// ZoneTagPrefix. It returns "" when none has one.
func instanceZone(e *api.ServiceEntry, o PoolOptions) string {
	if o.ZoneMeta != "" {
		if e.Service != nil {
			if z := e.Service.Meta[o.ZoneMeta]; z != "" {
				return z
			}
		}
		if e.Node != nil {
			if z := e.Node.Meta[o.ZoneMeta]; z != "" {
				return z
			}
		}
	}
	if o.ZoneTagPrefix != "" && e.Service != nil {
		for _, tag := range e.Service.Tags {
			if z, ok := strings.CutPrefix(tag, o.ZoneTagPrefix); ok && z != "" {
				return z
			}
		}
	}
	return ""
}

// instanceWeight finds an instance's weight: a positive integer in service
// metadata under the pool's WeightMeta key, else the Consul service weight
// for the instance's status (Passing, or Warning for a warning instance),
// else 1. badMeta is true when the metadata value was present but not a
// positive integer, so the caller can say so once.
func instanceWeight(e *api.ServiceEntry, status string, o PoolOptions) (weight int, badMeta bool) {
	if e.Service == nil {
		return 1, false
	}
	if o.WeightMeta != "" {
		if v, ok := e.Service.Meta[o.WeightMeta]; ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil && n > 0 {
				return n, false
			}
			badMeta = true
		}
	}
	w := e.Service.Weights.Passing
	if status == api.HealthWarning {
		w = e.Service.Weights.Warning
	}
	if w > 0 {
		return w, badMeta
	}
	return 1, badMeta
}

// instanceSpec converts one health entry into a spec. ok is false when the
// instance is not admitted or has no usable address; reason says which, for
// the log.
func instanceSpec(e *api.ServiceEntry, o PoolOptions) (spec balancer.Spec, badWeight bool, reason string) {
	if e == nil || e.Service == nil {
		return balancer.Spec{}, false, "entry has no service"
	}
	status := e.Checks.AggregatedStatus()
	if !admitted(status, o.IncludeWarning) {
		return balancer.Spec{}, false, "status " + status
	}
	addr, ok := instanceAddress(e)
	if !ok {
		return balancer.Spec{}, false, "no address or port"
	}
	weight, bad := instanceWeight(e, status, o)
	return balancer.Spec{
		Address: addr,
		Zone:    instanceZone(e, o),
		Weight:  weight,
	}, bad, ""
}
