//go:build !linux

package streams

import "errors"

// poller is only implemented on Linux; elsewhere each local direction keeps
// its own goroutine.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no poller on this platform") }

func (p *poller) add(*bridge, *rawReader) error  { return errors.New("no poller") }
func (p *poller) rearm(uint64, *rawReader) error { return errors.New("no poller") }
func (p *poller) remove(uint64)                  {}
func (p *poller) run()                           {}
func (p *poller) close()                         {}
