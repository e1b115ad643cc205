package api

import "time"

// Event types carried in Event.Type.
const (
	EventPeerDiscovered   = "peer_discovered"
	EventPeerConnected    = "peer_connected"
	EventPeerDisconnected = "peer_disconnected"
	EventStreamOpened     = "stream_opened"
	EventStreamClosed     = "stream_closed"
	EventListenerAdded    = "listener_added"
	EventListenerRemoved  = "listener_removed"
	// EventReachabilityChanged: the node's reachability changed (or was
	// pinned at start); Reachability says to what.
	EventReachabilityChanged = "reachability_changed"
	// EventRelayReservation: a reservation on a configured relay was made,
	// renewed, lost or failed; Relay says which and how.
	EventRelayReservation = "relay_reservation"
	// EventHolePunch: a hole punching step with Peer; HolePunch says which.
	EventHolePunch = "hole_punch"
	// EventDropped tells a subscriber that it lost Dropped events because it
	// read too slowly.
	EventDropped = "events_dropped"
)

// Event is one line of the event stream (GET RouteEvents answers with
// newline-delimited JSON Events).
type Event struct {
	// Seq numbers the daemon's events from 1; a gap means lost events.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`

	Peer       string    `json:"peer,omitempty"`
	Addresses  []string  `json:"addresses,omitempty"`
	Rendezvous string    `json:"rendezvous,omitempty"`
	Stream     *Stream   `json:"stream,omitempty"`
	Listener   *Listener `json:"listener,omitempty"`
	// Error is why a stream ended, when it did not end cleanly.
	Error string `json:"error,omitempty"`
	// Reachability is "public", "private" or "unknown"
	// (EventReachabilityChanged only).
	Reachability string `json:"reachability,omitempty"`
	// Relay is the reservation's new state (EventRelayReservation only).
	Relay *RelayReservation `json:"relay,omitempty"`
	// HolePunch is the step (EventHolePunch only).
	HolePunch *HolePunch `json:"hole_punch,omitempty"`
	// Dropped counts lost events (EventDropped only).
	Dropped uint64 `json:"dropped,omitempty"`
}
