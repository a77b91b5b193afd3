package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Operator overrides (drains, enables, evacuation) are shared by every
// proxy of a region through Consul's KV store, and kept in a local state
// file so that they survive a restart (with or without Consul). An
// override in force is a key with a Mark; enabling or restoring deletes
// the key, so the absence of every key is the state of a fresh proxy.

// OverrideKind is what an override acts on.
type OverrideKind string

// The kinds of override.
const (
	// Evacuation fails readiness while requests are served.
	Evacuation OverrideKind = "evacuation"
	// ZoneDrain drains a pool's zone, backends joining it later included.
	ZoneDrain OverrideKind = "zone"
	// BackendDrain drains one backend of a pool.
	BackendDrain OverrideKind = "backend"
)

// OverrideKey names one override: the kind, and for drains the pool and
// the zone or backend address.
type OverrideKey struct {
	Kind OverrideKind `json:"kind"`
	Pool string       `json:"pool,omitempty"`
	Name string       `json:"name,omitempty"` // zone or backend address
}

// String is the key as logs show it: "evacuation", "zone web/a",
// "backend web/127.0.0.1:8080".
func (k OverrideKey) String() string {
	if k.Kind == Evacuation {
		return string(k.Kind)
	}
	return string(k.Kind) + " " + k.Pool + "/" + k.Name
}

// Mark is who made an override and when: the admin token's name and the
// proxy whose admin API took the call.
type Mark struct {
	At    time.Time `json:"at"`
	By    string    `json:"by"`
	Proxy string    `json:"proxy,omitempty"`
}

// Overrides is every override in force. It is a value: change a copy.
type Overrides map[OverrideKey]Mark

// Clone returns a copy that can be changed without touching o.
func (o Overrides) Clone() Overrides {
	if o == nil {
		return Overrides{}
	}
	return maps.Clone(o)
}

// Diff returns the keys o has that prev has not (set) and the keys prev
// has that o has not (cleared), each sorted so that changes apply and log
// in a stable order. A key in both with another Mark is in neither: the
// override was made again, its effect is the same.
func (o Overrides) Diff(prev Overrides) (set, cleared []OverrideKey) {
	for k := range o {
		if _, ok := prev[k]; !ok {
			set = append(set, k)
		}
	}
	for k := range prev {
		if _, ok := o[k]; !ok {
			cleared = append(cleared, k)
		}
	}
	slices.SortFunc(set, CompareOverrideKeys)
	slices.SortFunc(cleared, CompareOverrideKeys)
	return set, cleared
}

// CompareOverrideKeys orders keys by their String, for stable listings.
func CompareOverrideKeys(a, b OverrideKey) int {
	return strings.Compare(a.String(), b.String())
}

// overridesFile is the state file's content.
type overridesFile struct {
	Saved     time.Time       `json:"saved"`
	Overrides []savedOverride `json:"overrides"`
}

type savedOverride struct {
	OverrideKey
	Mark
}

// SaveOverrides writes o to path whole: a crash leaves the last file or
// the new one (see saveFile).
func SaveOverrides(path string, o Overrides, now time.Time) error {
	f := overridesFile{Saved: now, Overrides: []savedOverride{}}
	for _, k := range slices.SortedFunc(maps.Keys(o), CompareOverrideKeys) {
		f.Overrides = append(f.Overrides, savedOverride{k, o[k]})
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return saveFile(path, append(data, '\n'))
}

// LoadOverrides reads the overrides kept at path; a missing file is none.
func LoadOverrides(path string) (Overrides, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Overrides{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f overridesFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	o := Overrides{}
	for _, s := range f.Overrides {
		if err := s.OverrideKey.valid(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		o[s.OverrideKey] = s.Mark
	}
	return o, nil
}

// valid reports a key no admin call could have made.
func (k OverrideKey) valid() error {
	switch k.Kind {
	case Evacuation:
		if k.Pool == "" && k.Name == "" {
			return nil
		}
	case ZoneDrain, BackendDrain:
		if k.Pool != "" && k.Name != "" {
			return nil
		}
	}
	return fmt.Errorf("invalid override %+v", k)
}
