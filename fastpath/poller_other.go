//go:build !linux

package fastpath

import "errors"

// errNoPoller is returned by newPoller where there is no poller; it is no
// failure: each local direction keeps its own goroutine.
var errNoPoller = errors.New("no poller on this platform")

// poller is only implemented on Linux.
type poller struct{}

func newPoller() (*poller, error) { return nil, errNoPoller }

func (p *poller) add(*bridge, *rawReader) error  { return errNoPoller }
func (p *poller) rearm(uint64, *rawReader) error { return errNoPoller }
func (p *poller) remove(uint64)                  {}
func (p *poller) takeWaiters() []*bridge         { return nil }
func (p *poller) run() error                     { return nil }
func (p *poller) close()                         {}
