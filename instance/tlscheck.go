package instance

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	edgetls "github.com/azimuthproxy/azimuth/tls"
)

// CheckTLS reads every TLS file of cfg, loaded from file, as Plan does: each
// listener's through edgetls.Check on the options tlsSourceOptions makes
// for edgetls.New, each pool's through edgetls.CheckBackend on those
// backendTLS makes for edgetls.BackendTLSConfig. So a check before a
// reload (azimuth validate, systemd's ExecReload) refuses what the reload
// would. Each problem is placed on the line of the key that names the
// file, as configs places its own, a warning's message starting
// "warning: ". failed is true if any problem is not a warning.
func CheckTLS(file string, cfg *configs.Config, now time.Time) (probs []configs.Problem, failed bool) {
	add := func(prefix string, found []edgetls.Problem) {
		for _, p := range found {
			key := prefix + p.Key
			msg := p.Err.Error()
			if p.Warning {
				msg = "warning: " + msg
			} else {
				failed = true
			}
			probs = append(probs, configs.Problem{File: file, Line: cfg.Line(key), Path: key, Msg: msg})
		}
	}
	for i := range cfg.Listeners {
		if l := &cfg.Listeners[i]; l.TLS != nil {
			add(fmt.Sprintf("listeners[%d].tls.", i), edgetls.Check(tlsSourceOptions(l), now))
		}
	}
	for i := range cfg.Pools {
		if o := backendTLS(&cfg.Pools[i]); o != nil {
			add(fmt.Sprintf("pools[%d].tls.", i), edgetls.CheckBackend(*o, now))
		}
	}
	slices.SortStableFunc(probs, func(a, b configs.Problem) int { return cmp.Compare(a.Line, b.Line) })
	return probs, failed
}
