// Package discovery finds other p2pd nodes and connects to them.
//
// It provides a Service that owns three things:
//
//   - a Kademlia DHT (go-libp2p-kad-dht, plain dht.New, not the dual WAN/LAN
//     DHT) and its bootstrap loop, which connects to the configured bootstrap
//     peers in parallel and keeps retrying while the routing table is empty;
//   - rendezvous loops (Join/Leave): advertise this node under a string and keep
//     looking for other nodes advertising the same string, connecting to each;
//   - mDNS discovery on the local network, connecting to every p2pd node seen.
//
// Service implements go-libp2p's core/discovery.Discovery, so it can be used
// wherever an Advertiser/Discoverer is expected.
//
// The package does not build the libp2p host, does not enforce address
// policy on dials (the host's connection gater does that; AddrFilter only
// shapes the addresses handed to and taken from the DHT), and does not persist
// anything: the DHT keeps its records in memory.
//
// Lifecycle: New does no I/O and starts nothing; Start creates the DHT and
// starts the loops and returns quickly; Close stops every loop, waits for
// them and closes the DHT. Close the Service before closing the host.
package discovery
