package instance

import (
	"strconv"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/azimuthproxy/azimuth/internal/proxyproto"
	"github.com/azimuthproxy/azimuth/proxy"
	edgetls "github.com/azimuthproxy/azimuth/tls"
)

// This file turns the config file's types into each package's own options.
// The packages never see configs types; a config key's meaning is decided
// here and in configs' doc comments.

func balancerOptions(zone string, p *configs.Pool) balancer.Options {
	return balancer.Options{
		LocalZone:       zone,
		SpillBelow:      p.Zones.SpillBelow,
		PanicBelow:      p.Zones.PanicBelow,
		SlowStart:       p.SlowStart,
		PenaltyHalfLife: p.Health.Passive.PenaltyHalfLife,
		QueueSize:       p.Queue.Size,
		QueueTimeout:    p.Queue.Timeout,
		ActiveChecks:    p.Health.Active != nil,
		Policy:          policy(p.Balance),
		Affinity:        affinity(p),
	}
}

// policy maps balance to the balancer's policy; validation accepted only
// these names.
func policy(balance string) balancer.Policy {
	switch balance {
	case configs.BalanceRoundRobin:
		return balancer.PolicyRoundRobin
	case configs.BalanceRandom:
		return balancer.PolicyRandom
	case configs.BalanceP2C:
		return balancer.PolicyP2C
	case configs.BalanceHash:
		return balancer.PolicyHash
	}
	return balancer.PolicyLeastConn
}

// affinity is what the proxy reads from a request to make its key: the
// hash key's source (balance hash only) and the sticky cookie.
func affinity(p *configs.Pool) balancer.Affinity {
	var a balancer.Affinity
	if k := p.HashKey; k != nil && p.Balance == configs.BalanceHash {
		switch {
		case k.Header != "":
			a.HashFrom, a.HashName = balancer.HashHeader, k.Header
		case k.Cookie != "":
			a.HashFrom, a.HashName = balancer.HashCookie, k.Cookie
		case k.Source == configs.HashSourceClientAddress:
			a.HashFrom = balancer.HashClientAddress
		}
	}
	if s := p.Sticky; s != nil {
		a.StickyCookie, a.StickyTTL = s.Cookie, s.TTL
	}
	return a
}

func staticSpecs(p *configs.Pool) []balancer.Spec {
	out := make([]balancer.Spec, 0, len(p.Backends))
	for _, b := range p.Backends {
		out = append(out, balancer.Spec{Address: b.Address, Zone: b.Zone, Weight: b.Weight, MaxConns: b.MaxConns})
	}
	return out
}

func retryPolicy(p *configs.Pool) proxy.RetryPolicy {
	r := proxy.RetryPolicy{
		Attempts:           p.Retry.Attempts,
		IdempotencyHeader:  p.Retry.IdempotencyHeader,
		MaxBody:            p.Retry.MaxBody.Bytes(),
		BudgetPercent:      float64(p.Retry.Budget.Percent),
		BudgetMinPerSecond: p.Retry.Budget.MinPerSecond,
		BudgetWindow:       p.Retry.Budget.Window,
	}
	for _, on := range p.Retry.On {
		switch on {
		case configs.RetryOnConnectFailure:
			r.On[proxy.CauseConnect] = true
		case configs.RetryOnTimeout:
			r.On[proxy.CauseTimeout] = true
		case configs.RetryOnReset:
			r.On[proxy.CauseReset] = true
		default: // a status code; validation accepted only 4xx and 5xx
			if code, err := strconv.Atoi(on); err == nil {
				r.On[proxy.CauseStatus] = true
				r.Statuses = append(r.Statuses, code)
			}
		}
	}
	return r
}

func timeouts(p *configs.Pool) proxy.Timeouts {
	t := proxy.Timeouts{Connect: p.Timeouts.Connect, Request: p.Timeouts.Request}
	switch p.Timeouts.PerTry.Mode {
	case configs.PerTryAuto:
		t.PerTryAuto = true
	case configs.PerTryFixed:
		t.PerTry = p.Timeouts.PerTry.Fixed
	}
	return t
}

func backendTLS(p *configs.Pool) *edgetls.BackendOptions {
	if p.TLS == nil {
		return nil
	}
	return &edgetls.BackendOptions{CAFile: p.TLS.CAFile, ServerName: p.TLS.ServerName, CertFile: p.TLS.CertFile, KeyFile: p.TLS.KeyFile}
}

func scheme(p *configs.Pool) string {
	if p.TLS != nil {
		return "https"
	}
	return "http"
}

func activeOptions(p *configs.Pool) (health.ActiveOptions, bool) {
	a := p.Health.Active
	if a == nil {
		return health.ActiveOptions{}, false
	}
	lo, hi, _ := a.StatusRange()
	o := health.ActiveOptions{
		Path: a.Path, Host: a.Host, ExpectMin: lo, ExpectMax: hi,
		Interval: a.Interval, Timeout: a.Timeout, Rise: a.Rise, Fall: a.Fall,
		// While a backend's last check disagrees with its state, check twice
		// as often (HAProxy's fastinter), so a hung backend goes down within
		// about interval + (fall-1)*interval/2 + timeout.
		FastInterval: a.Interval / 2,
	}
	switch p.SendProxyProtocol {
	case "v1":
		o.ProxyHeader = proxyproto.Header{Local: true}.AppendV1(nil)
	case "v2":
		o.ProxyHeader = proxyproto.Header{Local: true}.AppendV2(nil)
	}
	switch {
	case p.Protocol == configs.ProtocolH2C:
		o.Scheme = health.SchemeH2C
	case p.TLS != nil:
		o.Scheme = health.SchemeHTTPS
	default:
		o.Scheme = health.SchemeHTTP
	}
	return o, true
}

func passiveOptions(p *configs.Pool) health.PassiveOptions {
	return health.PassiveOptions{
		ConsecutiveFailures: p.Health.Passive.ConsecutiveFailures,
		Ejection:            p.Health.Passive.Ejection,
		MaxEjectedPercent:   p.Health.Passive.MaxEjectedPercent,
	}
}

func consulPoolOptions(p *configs.Pool) discovery.PoolOptions {
	c := p.Consul
	return discovery.PoolOptions{
		Service: c.Service, Tags: c.Tags, ZoneMeta: c.ZoneMeta, ZoneTagPrefix: c.ZoneTagPrefix,
		WeightMeta: c.WeightMeta, IncludeWarning: c.IncludeWarning,
	}
}

func tlsSourceOptions(l *configs.Listener) edgetls.Options {
	t := l.TLS
	o := edgetls.Options{Listener: l.Name, MinVersion: t.MinVersion, ClientCAFile: t.ClientCAFile, ClientAuth: t.ClientAuth}
	for _, c := range t.Certificates {
		o.Certs = append(o.Certs, edgetls.CertFile{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	return o
}
