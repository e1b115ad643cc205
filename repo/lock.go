package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// LockFile is the repo file whose lock marks the repo as in use by one
// process. The lock is an advisory file lock (flock on unix, LockFileEx on
// Windows) that the kernel drops when the process ends, however it ends, so
// a crash never leaves the repo locked. The file itself stays: it records who
// holds the lock, for the message others get, and removing it would let two
// processes lock two different files.
const LockFile = "repo.lock"

// Commands that take a repo's lock, as recorded in the lock file.
const (
	HolderDaemon = "daemon"
	HolderChat   = "chat"
	HolderInit   = "init"
)

// ErrLocked is matched (errors.Is) by the error of Lock and Init when
// another process holds the repo's lock; errors.As gives a *LockedError.
var ErrLocked = errors.New("repo is in use by another process")

// Holder describes the process holding a repo's lock, as it recorded itself
// in the lock file. Zero fields are unknown (a holder that has just taken the
// lock may not have written them yet).
type Holder struct {
	// PID is the holder's process ID.
	PID int `json:"pid"`
	// Command is what the holder runs: HolderDaemon, HolderChat or HolderInit.
	Command string `json:"command"`
	// API is a daemon's control API address, once it is bound.
	API string `json:"api,omitempty"`
}

// LockedError is returned when another process holds the repo's lock.
type LockedError struct {
	// Repo is the repo's directory.
	Repo string
	// Holder is who holds the lock.
	Holder Holder
}

func (e *LockedError) Error() string {
	pid := "pid unknown"
	if e.Holder.PID > 0 {
		pid = "pid " + strconv.Itoa(e.Holder.PID)
	}
	switch e.Holder.Command {
	case HolderChat:
		return fmt.Sprintf("p2pd chat is already running for %s with its identity (%s)", e.Repo, pid)
	case HolderInit:
		return fmt.Sprintf("p2pd init is already running for %s (%s)", e.Repo, pid)
	}
	api := e.Holder.API
	if api == "" {
		api = "an address not known yet"
	}
	return fmt.Sprintf("a daemon is already running for %s (API at %s, %s)", e.Repo, api, pid)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held repo lock. Release it when done; the kernel releases it if
// the process dies first.
type Lock struct {
	mu     sync.Mutex // guards f and holder
	f      *os.File   // nil once released
	holder Holder
}

// Lock takes the repo's lock for command (HolderDaemon, HolderChat or
// HolderInit) without waiting. When another process holds it, the error is a
// *LockedError naming the repo and the holder: for a daemon, "a daemon is
// already running for REPO (API at ADDR, pid N)".
func (r *Repo) Lock(command string) (*Lock, error) {
	path := r.File(LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the repo lock %s: %w", path, err)
	}
	held, err := lockFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the repo %s: %w", r.path, err)
	}
	if held {
		f.Close()
		return nil, &LockedError{Repo: r.path, Holder: r.lockHolder()}
	}
	l := &Lock{f: f, holder: Holder{PID: os.Getpid(), Command: command}}
	if err := l.record(); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// lockHolder reads who holds the lock. A daemon that has not recorded its
// API address yet may have written REPO/api already.
func (r *Repo) lockHolder() Holder {
	var h Holder
	if b, err := os.ReadFile(r.File(LockFile)); err == nil {
		_ = json.Unmarshal(b, &h) // a half-written record leaves fields unknown
	}
	if h.API == "" && (h.Command == "" || h.Command == HolderDaemon) {
		if b, err := os.ReadFile(r.File(APIFile)); err == nil {
			h.API = strings.TrimSpace(string(b))
		}
	}
	return h
}

// SetAPI records a daemon's API address in the lock file, for the message a
// second daemon gets.
func (l *Lock) SetAPI(addr string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holder.API = addr
	return l.recordLocked()
}

func (l *Lock) record() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recordLocked()
}

// recordLocked rewrites the lock file in place: replacing it (a rename) would
// move the lock to a file nobody else opens.
func (l *Lock) recordLocked() error {
	if l.f == nil {
		return errors.New("repo lock already released")
	}
	b, err := json.Marshal(l.holder)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("recording the repo lock's holder in %s: %w", l.f.Name(), err)
	}
	if _, err := l.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("recording the repo lock's holder in %s: %w", l.f.Name(), err)
	}
	return nil
}

// Release drops the lock. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	// Leave no stale holder behind for the message of the next refusal.
	_ = l.f.Truncate(0)
	err := unlockFile(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil && !errors.Is(err, fs.ErrClosed) {
		return fmt.Errorf("releasing the repo lock: %w", err)
	}
	return nil
}
