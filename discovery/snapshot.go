package discovery

import (
	"cmp"
	"slices"

	"github.com/hashicorp/consul/api"

	"github.com/azimuthproxy/azimuth/balancer"
)

// snapshot is one Consul answer turned into specs, with what the watcher
// should tell the operator about it.
type snapshot struct {
	// specs is sorted by address, one spec per address.
	specs []balancer.Spec
	// noZone lists admitted addresses that have no zone.
	noZone []string
	// badWeight lists admitted addresses whose weight metadata was invalid.
	badWeight []string
	// skipped counts entries left out because they were not admitted or
	// had no usable address.
	skipped int
}

// buildSnapshot converts a health answer into a whole, sorted,
// deduplicated set of specs. When two instances share an address (the same
// backend registered twice, e.g. on two agents), the one that sorts first
// by zone then weight wins, so the answer does not depend on Consul's order.
func buildSnapshot(entries []*api.ServiceEntry, o PoolOptions) snapshot {
	var s snapshot
	specs := make([]balancer.Spec, 0, len(entries))
	for _, e := range entries {
		spec, bad, reason := instanceSpec(e, o)
		if reason != "" {
			s.skipped++
			continue
		}
		if bad {
			s.badWeight = append(s.badWeight, spec.Address)
		}
		specs = append(specs, spec)
	}
	slices.SortFunc(specs, compareSpecs)
	specs = slices.CompactFunc(specs, func(a, b balancer.Spec) bool { return a.Address == b.Address })
	for _, spec := range specs {
		if spec.Zone == "" {
			s.noZone = append(s.noZone, spec.Address)
		}
	}
	s.specs = specs
	return s
}

// compareSpecs orders specs by address, then zone, then weight.
func compareSpecs(a, b balancer.Spec) int {
	return cmp.Or(
		cmp.Compare(a.Address, b.Address),
		cmp.Compare(a.Zone, b.Zone),
		cmp.Compare(a.Weight, b.Weight),
		cmp.Compare(a.MaxConns, b.MaxConns),
	)
}
