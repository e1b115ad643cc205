package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The UDP socket buffers of the QUIC paths. quic-go asks for quicWantBuffer
// bytes of receive and send buffer on its UDP socket; the kernel grants at
// most net.core.rmem_max and wmem_max, unless the process holds
// CAP_NET_ADMIN, in which case quic-go forces the size past them
// (SO_RCVBUFFORCE, SO_SNDBUFFORCE). The harness runs the daemons of both
// QUIC paths without CAP_NET_ADMIN, so that the sysctls decide: for the
// path "with" it raises the sysctls to quicWantBuffer when it can (as
// quic-go's documentation advises), for the path "without" it sets them to
// the -quic-udp-max-without value, and it puts the machine's own values
// back when the run ends.

// quicWantBuffer is the buffer quic-go v0.64 asks for (7 MiB,
// sys_conn_buffers_nonopenbsd.go).
const quicWantBuffer = 7 << 20

// linuxDefaultUDPMax is Linux's default net.core.rmem_max and wmem_max:
// what a daemon on a machine nobody tuned gets.
const linuxDefaultUDPMax = 212992

// sysctl files of the limits (variables for the tests).
var (
	rmemMaxFile = "/proc/sys/net/core/rmem_max"
	wmemMaxFile = "/proc/sys/net/core/wmem_max"
)

// udpLimits are net.core.rmem_max and wmem_max.
type udpLimits struct{ rmem, wmem int64 }

func readUDPLimits() (udpLimits, error) {
	var l udpLimits
	for _, f := range []struct {
		file string
		v    *int64
	}{{rmemMaxFile, &l.rmem}, {wmemMaxFile, &l.wmem}} {
		b, err := os.ReadFile(f.file)
		if err != nil {
			return l, err
		}
		if *f.v, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return l, fmt.Errorf("%s: %w", f.file, err)
		}
	}
	return l, nil
}

func writeUDPLimits(l udpLimits) error {
	if err := os.WriteFile(rmemMaxFile, []byte(strconv.FormatInt(l.rmem, 10)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(wmemMaxFile, []byte(strconv.FormatInt(l.wmem, 10)), 0o644)
}

// udpStateFile serialises the harness runs that change the limits (an
// exclusive lock, held from reading the machine's values until they are
// restored) and holds those values while they are changed, so that a run
// killed before it could restore them is undone by the next one.
var udpStateFile = filepath.Join(os.TempDir(), "p2pd-bench-udp-limits")

// udpSysctl changes the machine's UDP buffer limits for the daemons of the
// QUIC paths and puts the original values back in restore.
type udpSysctl struct {
	orig    udpLimits
	canSet  bool     // the limits can be written (root, writable /proc/sys, the lock held)
	changed bool     // the limits may differ from orig
	state   *os.File // udpStateFile, locked, while canSet
	why     string   // why the limits cannot be changed
}

// newUDPSysctl reads the limits and finds out whether they can be changed.
// As root it first takes udpStateFile's lock, waiting for another run of
// the harness to restore the limits it changed, and restores those a
// killed run left behind.
func newUDPSysctl(ctx context.Context) (*udpSysctl, error) {
	u := &udpSysctl{}
	var err error
	if u.orig, err = readUDPLimits(); err != nil {
		u.why = fmt.Sprintf("cannot read net.core.rmem_max/wmem_max: %v", err)
		return u, nil
	}
	if os.Geteuid() != 0 {
		u.why = "not root"
		return u, nil
	}
	f, err := lockUDPState(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return u, ctx.Err()
		}
		u.why = err.Error()
		return u, nil
	}
	if left, ok := readUDPState(f); ok {
		logf("a harness run that was stopped before restoring them left net.core.rmem_max/wmem_max changed: "+
			"restoring %d / %d", left.rmem, left.wmem)
		u.orig = left
	}
	// Writing the limits back finds out whether they can be written.
	if err := writeUDPLimits(u.orig); err != nil {
		f.Close()
		u.why = fmt.Sprintf("cannot write net.core.rmem_max/wmem_max: %v", err)
		return u, nil
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		u.why = fmt.Sprintf("%s: %v", udpStateFile, err)
		return u, nil
	}
	u.state, u.canSet = f, true
	return u, nil
}

// lockUDPState opens udpStateFile and takes its lock, waiting (until ctx
// ends) while another run holds it.
func lockUDPState(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(udpStateFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the limits' state file: %w", err)
	}
	for waited := false; ; waited = true {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", udpStateFile, err)
		}
		if !waited {
			logf("waiting for another run of the harness to restore net.core.rmem_max/wmem_max (it holds %s)", udpStateFile)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readUDPState reads the limits a run saved in the state file before
// changing them; ok is false if the file holds none.
func readUDPState(f *os.File) (l udpLimits, ok bool) {
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	_, err := fmt.Sscan(string(b[:n]), &l.rmem, &l.wmem)
	return l, err == nil && l.rmem > 0 && l.wmem > 0
}

// canRaise says whether the daemons can get quic-go's buffers: by raising
// the limits, or as root (CAP_NET_ADMIN) past them.
func (u *udpSysctl) canRaise() bool { return u.canSet || os.Geteuid() == 0 }

// set sets both limits to n (when it can) and returns the limits now in
// force.
func (u *udpSysctl) set(n int64) (udpLimits, error) {
	if u.canSet {
		if !u.changed {
			if _, err := u.state.WriteAt([]byte(fmt.Sprintf("%d %d\n", u.orig.rmem, u.orig.wmem)), 0); err != nil {
				return udpLimits{}, fmt.Errorf("%s: %w", udpStateFile, err)
			}
		}
		u.changed = true
		if err := writeUDPLimits(udpLimits{n, n}); err != nil {
			return udpLimits{}, err
		}
	}
	return readUDPLimits()
}

// restore puts the machine's limits back if they were changed and lets
// other runs change them.
func (u *udpSysctl) restore() {
	if u.state == nil {
		return
	}
	defer func() {
		u.state.Close() // releases the lock
		u.state = nil
	}()
	if !u.changed {
		return
	}
	if err := writeUDPLimits(u.orig); err != nil {
		// The state file keeps the values for the next run.
		logf("warning: could not restore net.core.rmem_max=%d and wmem_max=%d: %v", u.orig.rmem, u.orig.wmem, err)
		return
	}
	_ = u.state.Truncate(0)
	u.changed = false
	logf("restored net.core.rmem_max=%d, wmem_max=%d", u.orig.rmem, u.orig.wmem)
}

// udpSockets is what `ss -m` says about a process's UDP sockets.
type udpSockets struct {
	rb, tb int64 // the largest receive and send buffer (skmem rb, tb: the kernel's accounting, twice the size granted)
	drops  int64 // datagrams dropped at their receive buffers, summed (skmem d)
}

// udpSocketStats reads the UDP sockets of process pid.
func udpSocketStats(ctx context.Context, pid int) (udpSockets, error) {
	out, err := exec.CommandContext(ctx, "ss", "-uamnpH").Output()
	if err != nil {
		return udpSockets{}, fmt.Errorf("ss -uamnpH: %w", err)
	}
	st, ok := parseSS(out, pid)
	if !ok {
		return st, fmt.Errorf("ss lists no UDP socket of process %d", pid)
	}
	return st, nil
}

// udpDrops sums the receive-buffer drops of the UDP sockets of pids.
func udpDrops(ctx context.Context, pids []int) (int64, error) {
	var n int64
	for _, pid := range pids {
		st, err := udpSocketStats(ctx, pid)
		if err != nil {
			return 0, err
		}
		n += st.drops
	}
	return n, nil
}

// parseSS reads `ss -uamnpH` output: one socket per line, its skmem on the
// line or the indented line after it.
func parseSS(out []byte, pid int) (st udpSockets, ok bool) {
	var sockets []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if len(sockets) > 0 && (strings.HasPrefix(l, "\t") || strings.HasPrefix(l, " ")) {
			sockets[len(sockets)-1] += " " + strings.TrimSpace(l)
			continue
		}
		sockets = append(sockets, l)
	}
	want := fmt.Sprintf("pid=%d,", pid)
	for _, s := range sockets {
		if !strings.Contains(s, want) {
			continue
		}
		_, mem, found := strings.Cut(s, "skmem:(")
		if !found {
			continue
		}
		ok = true
		mem, _, _ = strings.Cut(mem, ")")
		for _, kv := range strings.Split(mem, ",") {
			i := strings.IndexAny(kv, "0123456789")
			if i < 1 {
				continue
			}
			v, err := strconv.ParseInt(kv[i:], 10, 64)
			if err != nil {
				continue
			}
			switch kv[:i] {
			case "rb":
				st.rb = max(st.rb, v)
			case "tb":
				st.tb = max(st.tb, v)
			case "d":
				st.drops += v
			}
		}
	}
	return st, ok
}

// capNetAdmin is CAP_NET_ADMIN's bit in /proc/PID/status's capability masks.
const capNetAdmin = 12

// hasNetAdmin says whether process pid has CAP_NET_ADMIN in its effective set.
func hasNetAdmin(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, err
	}
	ok, err := netAdminIn(b)
	if err != nil {
		return false, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return ok, nil
}

// netAdminIn says whether a /proc/PID/status text has CAP_NET_ADMIN in its
// effective set (CapEff).
func netAdminIn(status []byte) (bool, error) {
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("CapEff %q: %w", strings.TrimSpace(v), err)
			}
			return m&(1<<capNetAdmin) != 0, nil
		}
	}
	return false, errors.New("no CapEff line")
}

// quicBufferWarning returns quic-go's warning about the buffer sizes from
// a daemon's log, or "".
func quicBufferWarning(logFile string) string {
	b, err := os.ReadFile(logFile)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, "failed to "); i >= 0 && strings.Contains(l, "buffer size") {
			return strings.TrimSpace(l[i:])
		}
	}
	return ""
}
