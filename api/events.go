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
	// Dropped counts lost events (EventDropped only).
	Dropped uint64 `json:"dropped,omitempty"`
}
