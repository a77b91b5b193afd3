package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// cached is a pool's last set from Consul as kept on disk.
type cached struct {
	Service  string          `json:"service"`
	Pool     string          `json:"pool"`
	Saved    time.Time       `json:"saved"`
	Backends []balancer.Spec `json:"backends"`
}

// CacheFile is where a pool's set is cached in dir.
func CacheFile(dir, pool string) string {
	return filepath.Join(dir, "consul-"+pool+".json")
}

// saveCache writes the set so that a restart while the agent cannot be
// reached starts from it.
func saveCache(path string, c cached) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return saveFile(path, data)
}

// saveFile writes data to path through a temporary file, synced, then
// renamed over the last one, so a crash leaves the old file or the new
// one, whole.
func saveFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is none
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadCache reads a cached set of service; ok is false when there is
// none, or it is for another service (the pool was pointed elsewhere).
func loadCache(path, service string) (c cached, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cached{}, false, nil
	}
	if err != nil {
		return cached{}, false, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return cached{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return c, c.Service == service && len(c.Backends) > 0, nil
}
