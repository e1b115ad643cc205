package daemon

import "github.com/p2pd/p2pd/events"

// SubscribeEvents subscribes to the daemon's events in process, as the
// events API route does over HTTP: buffer is how many unread events the
// subscription may hold before it starts losing them (buffer <= 0 means
// events.DefaultBuffer). The caller must Close it. Call it once Start has
// returned; after Close the subscription is already ended.
func (d *Daemon) SubscribeEvents(buffer int) *events.Subscription {
	if d.events == nil { // Start has not run, or failed early
		ended := events.NewDispatcher()
		ended.Close()
		return ended.Subscribe(buffer)
	}
	return d.events.Subscribe(buffer)
}
