package streams

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

// poller waits for readability of the idle local connections of a registry
// with a single goroutine, so that an idle bridge parks only its stream-side
// goroutine. It uses its own epoll instance (one-shot, level-triggered
// registrations keyed by bridge ID); that instance is itself waited for
// through the Go netpoller, so closing it wakes the loop.
type poller struct {
	epfd int      // owned by file
	file *os.File // the epoll fd as a pollable file

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
	p.waiters[b.info.ID] = b
	p.mu.Unlock()
	if err := p.ctl(syscall.EPOLL_CTL_ADD, b.info.ID, rr); err != nil {
		p.remove(b.info.ID)
		return err
	}
	return nil
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

// run wakes the bridges whose local connection became readable, until close.
func (p *poller) run() {
	rc, err := p.file.SyscallConn()
	if err != nil {
		log.Errorw("waiting for local connections", "err", err)
		return
	}
	events := make([]syscall.EpollEvent, 128)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return false // wait for the next readiness of the epoll fd
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
}

// close stops run (the caller waits for it) and releases the epoll instance.
func (p *poller) close() {
	_ = p.file.Close()
}
