package instance

import (
	"fmt"
	"sync"
	"testing"

	"github.com/azimuthproxy/azimuth/configs"
)

// Reading the status, readiness and metrics while reloads apply is free of
// data races: under the race detector, reloads change the instance's zone,
// pools and their health settings while readers run the whole time.
func TestStatusWhileReloading(t *testing.T) {
	a := newInstance(t)
	addr := freeAddr(t, "127.0.0.1")
	config := func(i int) *configs.Config {
		t.Helper()
		zone := []string{"zone-a", "zone-b"}[i%2]
		extra := ""
		if i%3 == 0 {
			extra = "  - name: extra\n    health: { active: { path: /healthz, interval: 1s } }\n    backends: [ { address: 127.0.2.1:1, zone: zone-b } ]\n"
		}
		c, err := configs.Parse("race.yaml", []byte(fmt.Sprintf(`zone: %s
admin: { address: 127.0.0.1:0 }
log: { access_log: { output: "off" } }
listeners:
  - name: web
    address: %s
    routes: [ { pool: web } ]
pools:
  - name: web
    health: { passive: { consecutive_failures: %d } }
    backends: [ { address: 127.0.1.1:1, zone: zone-a }, { address: 127.0.2.2:1, zone: zone-b } ]
%s`, zone, addr, 3+i%4, extra)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := a.Apply(config(0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 3 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = a.Status()
				_ = a.Ready()
				if _, err := a.reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := 1; i <= 60; i++ {
		if err := a.Apply(config(i)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	readers.Wait()
	if st := a.Status(); st.Zone != "zone-a" && st.Zone != "zone-b" {
		t.Errorf("zone %q after the reloads", st.Zone)
	}
}
