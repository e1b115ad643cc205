// Package nat holds what p2pd adds to go-libp2p so that peers behind NATs
// reach each other:
//
//   - Keeper keeps a reservation on each configured relay (circuit relay
//     v2), announces the /p2p-circuit addresses it yields, renews it before
//     it expires and makes it again after the relay restarts;
//   - StartRelay makes the host a relay for others, with limits;
//   - PunchTracker follows hole punching (DCUtR) per peer, so that a
//     forward knows when waiting for a direct connection is pointless and
//     can say why.
//
// Why p2pd keeps its relay reservations itself rather than through
// go-libp2p's autorelay: autorelay keeps its reservations private (no
// expiry, no reason for a failure, so `p2pd status` could not show them),
// backs off an unreachable static relay for an hour, and with fewer relay
// candidates than it wants waits three minutes before its first
// reservation. The Keeper reserves at once, retries within a minute, and
// feeds its circuit addresses to the host the way autorelay does (an
// event.EvtAutoRelayAddrsUpdated on the host's event bus), so the host
// announces them exactly when autorelay's would be: while the host's
// reachability is private.
//
// Every address rule of go-libp2p applies: circuit addresses are built from
// the relay's public addresses (manet.IsPublicAddr), and hole punching
// exchanges public addresses only.
package nat
