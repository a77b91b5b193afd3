package acme

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/consul/api"
)

// ConsulStorage keeps certmagic's account, keys, certificates and
// challenge tokens in Consul's KV store under one prefix, and its locks as
// Consul locks (a session each), so that the proxies sharing an agent share
// one account and one certificate per name, and one of them at a time
// orders or renews it. A key's modification time rides in its flags.
type ConsulStorage struct {
	kv     *api.KV
	client *api.Client
	prefix string // ends in "/"

	mu    sync.Mutex
	locks map[string]*api.Lock
}

var _ certmagic.Storage = (*ConsulStorage)(nil)

// lockSessionTTL bounds how long a lock outlives a proxy that died
// holding it (plus Consul's lock delay, 15 s by default).
const lockSessionTTL = "30s"

// storageTimeout bounds each read and write, so that a hung agent stalls
// no order, renewal or stop for longer.
const storageTimeout = 10 * time.Second

// bounded is ctx with storageTimeout.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, storageTimeout)
}

// NewConsulStorage keeps certmagic's data under prefix ("azimuth/acme/").
func NewConsulStorage(client *api.Client, prefix string) *ConsulStorage {
	prefix = strings.TrimPrefix(prefix, "/")
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &ConsulStorage{kv: client.KV(), client: client, prefix: prefix, locks: map[string]*api.Lock{}}
}

func (s *ConsulStorage) key(k string) string { return s.prefix + strings.Trim(k, "/") }

// Store writes value at key.
func (s *ConsulStorage) Store(ctx context.Context, key string, value []byte) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	p := &api.KVPair{Key: s.key(key), Value: value, Flags: uint64(time.Now().UnixNano())}
	if _, err := s.kv.Put(p, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul storage: storing %s: %w", key, err)
	}
	return nil
}

// Load reads key; a key that is not there is fs.ErrNotExist.
func (s *ConsulStorage) Load(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	p, _, err := s.kv.Get(s.key(key), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul storage: loading %s: %w", key, err)
	}
	if p == nil {
		return nil, fmt.Errorf("consul storage: %s: %w", key, fs.ErrNotExist)
	}
	return p.Value, nil
}

// Delete removes key and everything under it, as a directory would go.
func (s *ConsulStorage) Delete(ctx context.Context, key string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	o := (&api.WriteOptions{}).WithContext(ctx)
	if _, err := s.kv.Delete(s.key(key), o); err != nil {
		return fmt.Errorf("consul storage: deleting %s: %w", key, err)
	}
	if _, err := s.kv.DeleteTree(s.key(key)+"/", o); err != nil {
		return fmt.Errorf("consul storage: deleting %s/: %w", key, err)
	}
	return nil
}

// Exists reports whether key, or anything under it, is stored.
func (s *ConsulStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the keys directly under dir, or every key beneath it when
// recursive, without the storage's prefix.
func (s *ConsulStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	base := s.key(dir)
	if base != "" && !strings.HasSuffix(base, "/") {
		base += "/"
	}
	sep := "/"
	if recursive {
		sep = ""
	}
	keys, _, err := s.kv.Keys(base, sep, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul storage: listing %s: %w", dir, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("consul storage: %s: %w", dir, fs.ErrNotExist)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(k, s.prefix), "/"))
	}
	return out, nil
}

// Stat describes key: a stored value, or a directory when only keys
// beneath it are stored.
func (s *ConsulStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	q := (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
	p, _, err := s.kv.Get(s.key(key), q)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("consul storage: %s: %w", key, err)
	}
	if p != nil {
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, int64(p.Flags)), Size: int64(len(p.Value)), IsTerminal: true}, nil
	}
	under, _, err := s.kv.Keys(s.key(key)+"/", "/", q)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("consul storage: %s: %w", key, err)
	}
	if len(under) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("consul storage: %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key}, nil
}

// Lock takes the Consul lock named name, waiting until it is free or ctx
// ends. The lock's session is renewed while it is held; a proxy that dies
// holding it loses it after the session's TTL.
func (s *ConsulStorage) Lock(ctx context.Context, name string) error {
	l, err := s.client.LockOpts(&api.LockOptions{
		Key:          s.key(path.Join("locks", name)),
		SessionName:  "azimuth acme " + name,
		SessionTTL:   lockSessionTTL,
		LockWaitTime: time.Second, // how soon a cancelled wait returns
	})
	if err != nil {
		return fmt.Errorf("consul storage: lock %s: %w", name, err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			close(stop)
		case <-done:
		}
	}()
	for {
		held, err := l.Lock(stop)
		switch {
		case err != nil:
			return fmt.Errorf("consul storage: lock %s: %w", name, err)
		case held != nil:
			s.mu.Lock()
			s.locks[name] = l
			s.mu.Unlock()
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("consul storage: lock %s: %w", name, ctx.Err())
		}
	}
}

// Unlock releases the lock named name, taken by Lock.
func (s *ConsulStorage) Unlock(_ context.Context, name string) error {
	s.mu.Lock()
	l := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("consul storage: unlock %s: not held", name)
	}
	if err := l.Unlock(); err != nil && !errors.Is(err, api.ErrLockNotHeld) {
		return fmt.Errorf("consul storage: unlock %s: %w", name, err)
	}
	return nil
}

// String names the storage in logs.
func (s *ConsulStorage) String() string { return "consul:" + s.prefix }
