package fastpath

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// errNoPoller is returned by newPoller where there is no poller; it is no
// failure (idle connections keep their goroutine). Never on Linux.
var errNoPoller = errors.New("no poller on this platform")

// poller waits for readability of the idle local connections of a registry
// with a single goroutine, so that an idle bridge parks only its stream-side
// goroutine. It uses its own epoll instance (one-shot, level-triggered
// registrations keyed by bridge ID); that instance is itself waited for
// through the Go netpoller, so closing it wakes the loop.
type poller struct {
	epfd    int         // owned by file
	file    *os.File    // the epoll fd as a pollable file
	closing atomic.Bool // close was called: run's end is no failure

	mu      sync.Mutex // guards waiters
	waiters map[uint64]*bridge
}

// newPoller creates the epoll instance; run must then be started.
func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating epoll instance: %w", os.NewSyscallError("epoll_create1", err))
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("setting epoll instance non-blocking: %w", os.NewSyscallError("fcntl", err))
	}
	return &poller{
		epfd:    epfd,
		file:    os.NewFile(uintptr(epfd), "streams-epoll"),
		waiters: make(map[uint64]*bridge),
	}, nil
}

func epollEvent(id uint64) syscall.EpollEvent {
	return syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
}

// add registers the local connection of b (read through rr) and arms it.
func (p *poller) add(b *bridge, rr *rawReader) error {
	p.mu.Lock()
	p.waiters[b.id] = b
	p.mu.Unlock()
	if err := p.ctl(syscall.EPOLL_CTL_ADD, b.id, rr); err != nil {
		p.remove(b.id)
		return err
	}
	return nil
}

// takeWaiters forgets every bridge and returns them (when the poller died).
func (p *poller) takeWaiters() []*bridge {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*bridge, 0, len(p.waiters))
	for id, b := range p.waiters {
		out = append(out, b)
		delete(p.waiters, id)
	}
	return out
}

// rearm arms the one-shot registration of b again after its reader drained
// the socket. Readiness that came meanwhile is reported at once (level
// triggered).
func (p *poller) rearm(id uint64, rr *rawReader) error {
	return p.ctl(syscall.EPOLL_CTL_MOD, id, rr)
}

// ctl runs epoll_ctl on the reader's fd while the fd is guaranteed open (it
// cannot be closed and reused under RawConn.Control).
func (p *poller) ctl(op int, id uint64, rr *rawReader) error {
	var cerr error
	err := rr.rc.Control(func(fd uintptr) {
		ev := epollEvent(id)
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	if cerr != nil {
		return os.NewSyscallError("epoll_ctl", cerr)
	}
	return nil
}

// remove forgets b. Its registration in the kernel goes away when its fd is
// closed; an event that is already on its way finds no waiter and is dropped.
func (p *poller) remove(id uint64) {
	p.mu.Lock()
	delete(p.waiters, id)
	p.mu.Unlock()
}

// run wakes the bridges whose local connection became readable, until
// close (it then returns nil) or a failure of the epoll instance (the
// error).
func (p *poller) run() error {
	rc, err := p.file.SyscallConn()
	if err != nil {
		return fmt.Errorf("waiting for local connections: %w", err)
	}
	events := make([]syscall.EpollEvent, 128)
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), events, 0)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == nil && n <= 0:
				return false // wait for the next readiness of the epoll fd
			case err != nil:
				werr = os.NewSyscallError("epoll_wait", err)
				return true
			}
			for _, ev := range events[:n] {
				id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
				p.mu.Lock()
				b := p.waiters[id]
				p.mu.Unlock()
				if b != nil {
					b.wakeLocal()
				}
			}
		}
	})
	if p.closing.Load() {
		return nil
	}
	if werr != nil {
		return werr
	}
	if err == nil {
		err = errors.New("stopped unexpectedly")
	}
	return fmt.Errorf("waiting for local connections: %w", err)
}

// close stops run (the caller waits for it) and releases the epoll instance.
func (p *poller) close() {
	p.closing.Store(true)
	_ = p.file.Close()
}
