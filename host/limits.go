package host

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/x/rate"
)

const (
	// yamuxStreamWindow is what go-yamux reserves from the peer's
	// resource scope for every stream it opens or accepts: its initial
	// receive window (go-yamux/v5 const.go initialStreamWindow).
	yamuxStreamWindow = 256 << 10

	minStreamsPerPeer = 256
	maxStreamsPerPeer = 1 << 20
)

// limitConfig returns the resource manager limits for a budget of
// maxStreams streams per peer: go-libp2p's defaults (scaled to this
// machine, with its service limits) with the stream limits raised as the
// package documentation's table says.
func limitConfig(maxStreams int) rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.AutoScale()
	defaults := base.ToPartialLimitConfig()

	streams := func(n int) rcmgr.ResourceLimits {
		return rcmgr.ResourceLimits{
			Streams:         rcmgr.LimitVal(n),
			StreamsInbound:  rcmgr.LimitVal(n),
			StreamsOutbound: rcmgr.LimitVal(n),
		}
	}
	// Memory for n more yamux streams on top of a default budget.
	plusWindows := func(def rcmgr.LimitVal64, n int) rcmgr.LimitVal64 {
		return def + rcmgr.LimitVal64(int64(n)*yamuxStreamWindow)
	}

	system := streams(2 * maxStreams)
	system.Memory = plusWindows(defaults.System.Memory, 2*maxStreams)
	peer := streams(maxStreams)
	peer.Memory = plusWindows(defaults.PeerDefault.Memory, maxStreams)

	override := rcmgr.PartialLimitConfig{
		System:              system,
		Transient:           streams(maxStreams),
		PeerDefault:         peer,
		ProtocolDefault:     streams(2 * maxStreams),
		ProtocolPeerDefault: streams(maxStreams),
	}
	return override.Build(base)
}

// newResourceManager builds the resource manager for c.
func newResourceManager(c *config) (network.ResourceManager, error) {
	var opts []rcmgr.Option
	if !c.rcmgrMetrics {
		opts = append(opts, rcmgr.WithMetricsDisabled())
	}
	if len(c.trusted) > 0 {
		opts = append(opts, trustedOptions(c.trusted)...)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limitConfig(c.maxStreams)), opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the resource manager: %w", err)
	}
	return rm, nil
}

// trustedOptions lifts the per-IP connection count and rate limits for the
// trusted prefixes. Both options replace go-libp2p's built-in settings
// wholesale, so the loopback exemptions and the per-subnet rates those
// carry are restated here.
func trustedOptions(trusted []netip.Prefix) []rcmgr.Option {
	v4 := append([]rcmgr.NetworkPrefixLimit(nil), rcmgr.DefaultNetworkPrefixLimitV4...)
	v6 := append([]rcmgr.NetworkPrefixLimit(nil), rcmgr.DefaultNetworkPrefixLimitV6...)
	rates := []rate.PrefixLimit{
		{Prefix: netip.MustParsePrefix("127.0.0.0/8")}, // a zero Limit means unlimited
		{Prefix: netip.MustParsePrefix("::1/128")},
	}
	for _, p := range trusted {
		l := rcmgr.NetworkPrefixLimit{Network: p, ConnCount: math.MaxInt}
		if p.Addr().Is4() {
			v4 = append(v4, l)
		} else {
			v6 = append(v6, l)
		}
		rates = append(rates, rate.PrefixLimit{Prefix: p})
	}
	// go-libp2p's defaults (conn_rate_limiter.go), which are unexported.
	perAddr := rate.Limit{RPS: 0.2, Burst: 16}
	return []rcmgr.Option{
		rcmgr.WithNetworkPrefixLimit(v4, v6),
		rcmgr.WithConnRateLimiters(&rate.Limiter{
			NetworkPrefixLimits: rates,
			SubnetRateLimiter: rate.SubnetLimiter{
				IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: perAddr}},
				IPv6SubnetLimits: []rate.SubnetLimit{
					{PrefixLength: 56, Limit: perAddr},
					{PrefixLength: 48, Limit: rate.Limit{RPS: 0.5, Burst: 80}},
				},
				GracePeriod: time.Minute,
			},
		}),
	}
}
