package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/p2pd/p2pd/api"
)

var eventsCmd = &command{
	name:  "events",
	args:  "[--json]",
	short: "print the daemon's events live",
	help: `Prints peers discovered, connected and disconnected, streams opened and closed (with
byte counts) and listeners added and removed, as they happen, until interrupted. A reader
that falls behind loses events and is told how many ("events_dropped").

OUTPUT
  One line per event: TIME TYPE DETAILS
    peer_discovered    PEER via RENDEZVOUS
    peer_connected     PEER ADDRESS...
    peer_disconnected  PEER
    stream_opened      ID PROTOCOL PEER
    stream_closed      ID PROTOCOL PEER in=BYTES out=BYTES [error=REASON]
                       (a UDP flow adds datagrams_in=N datagrams_out=N dropped=N after out=)
    listener_added     KIND PROTOCOL LISTEN TARGET
    listener_removed   KIND PROTOCOL LISTEN TARGET
    reachability_changed  REACHABILITY
    relay_reservation  RELAY reserved until TIME | RELAY lost: REASON
    hole_punch         PEER attempt N | PEER result ok|failed [error=REASON] | PEER direct_dial ok|failed
    events_dropped     N events lost
  --json prints each event as one line of JSON: {"seq","time","type",...}

EXAMPLES
  p2pd events
  p2pd events --json | jq -c 'select(.type == "stream_closed")'`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		k, err := parseCall(e, c, fs, cf, args)
		if err != nil {
			return err
		}
		es, err := k.cl.Events(ctx)
		if err != nil {
			return explain(err)
		}
		defer es.Close()
		for {
			ev, err := es.Next()
			if err != nil {
				if ctx.Err() != nil {
					return nil // interrupted: a clean end
				}
				return fmt.Errorf("event stream ended: %w", explain(err))
			}
			if cf.json {
				if err := printJSONLine(e.stdout, ev); err != nil {
					return err
				}
				continue
			}
			if _, err := fmt.Fprintln(e.stdout, formatEvent(ev)); err != nil {
				return err
			}
		}
	},
}

// formatEvent renders one event as a line of text.
func formatEvent(ev api.Event) string {
	parts := []string{ev.Time.Local().Format(time.TimeOnly), ev.Type}
	switch ev.Type {
	case api.EventStreamOpened, api.EventStreamClosed:
		if s := ev.Stream; s != nil {
			parts = append(parts, fmt.Sprint(s.ID), s.Protocol, s.Peer)
			if ev.Type == api.EventStreamClosed {
				parts = append(parts, fmt.Sprintf("in=%d", s.BytesIn), fmt.Sprintf("out=%d", s.BytesOut))
				if s.DatagramsIn != nil && s.DatagramsOut != nil && s.Dropped != nil { // a UDP flow
					parts = append(parts, fmt.Sprintf("datagrams_in=%d", *s.DatagramsIn),
						fmt.Sprintf("datagrams_out=%d", *s.DatagramsOut), fmt.Sprintf("dropped=%d", *s.Dropped))
				}
			}
		}
		if ev.Error != "" {
			parts = append(parts, "error="+ev.Error)
		}
	case api.EventListenerAdded, api.EventListenerRemoved:
		if l := ev.Listener; l != nil {
			parts = append(parts, l.Kind, l.Protocol, l.ListenAddress, l.TargetAddress)
		}
	case api.EventDropped:
		parts = append(parts, fmt.Sprintf("%d events lost (reading too slowly)", ev.Dropped))
	case api.EventPeerDiscovered:
		parts = append(parts, ev.Peer)
		if ev.Rendezvous != "" {
			parts = append(parts, "via", ev.Rendezvous)
		}
	case api.EventPeerConnected:
		parts = append(parts, ev.Peer)
		parts = append(parts, ev.Addresses...)
	case api.EventReachabilityChanged:
		parts = append(parts, ev.Reachability)
	case api.EventRelayReservation:
		if r := ev.Relay; r != nil {
			if r.Active && r.Expires != nil {
				parts = append(parts, r.Peer, "reserved until", r.Expires.Local().Format(time.TimeOnly))
			} else {
				parts = append(parts, r.Peer, "lost: "+r.Error)
			}
		}
	case api.EventHolePunch:
		if h := ev.HolePunch; h != nil {
			parts = append(parts, ev.Peer, h.Kind)
			if h.Kind == "attempt" {
				parts = append(parts, fmt.Sprint(h.Attempt))
				break
			}
			parts = append(parts, map[bool]string{true: "ok", false: "failed"}[h.Success])
			if h.Error != "" {
				parts = append(parts, "error="+h.Error)
			}
		}
	default:
		if ev.Peer != "" {
			parts = append(parts, ev.Peer)
		}
	}
	return strings.Join(parts, " ")
}
