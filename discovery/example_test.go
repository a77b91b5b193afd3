package discovery_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/discovery"
)

// A pool fed from Consul, as cmd/azimuth wires it: one client per agent,
// one watcher per pool, each run by a goroutine that the proxy's context
// owns. State feeds /readyz and /status.
func ExampleNewWatcher() {
	token, err := discovery.LoadToken("", nil) // token_file, else CONSUL_HTTP_TOKEN
	if err != nil {
		panic(err)
	}
	client, err := discovery.NewClient(discovery.Options{Address: "127.0.0.1:8500", Token: token})
	if err != nil {
		panic(err)
	}
	pool := balancer.NewPool("api", balancer.Options{LocalZone: "us-east-1a"})
	w, err := discovery.NewWatcher(discovery.WatcherConfig{
		Pool:       "api",
		Client:     client,
		Options:    discovery.PoolOptions{Service: "api", ZoneMeta: "az", ZoneTagPrefix: "az="},
		Sink:       pool,
		Logger:     slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	_ = w.State().Synced
}
